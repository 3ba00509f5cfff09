namespace ContinualServe.Server.StatusPage;

/// <summary>
/// Estimates a quantile from cumulative histogram buckets by linear interpolation inside the bucket that
/// contains it, the method of Prometheus's histogram_quantile.
/// </summary>
public static class HistogramQuantile
{
    /// <param name="quantile">From 0 to 1.</param>
    /// <param name="buckets">Cumulative counts by upper bound, in ascending order of bound, the last one +Inf.</param>
    /// <returns>The estimate, or null when the buckets hold no observation.</returns>
    public static double? Estimate(double quantile, IReadOnlyList<(double Bound, double Count)> buckets)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        if (buckets.Count == 0 || buckets[^1].Count <= 0)
        {
            return null;
        }

        double rank = quantile * buckets[^1].Count;
        double lowerBound = 0;
        double lowerCount = 0;
        foreach ((double bound, double count) in buckets)
        {
            if (count >= rank)
            {
                if (double.IsPositiveInfinity(bound))
                {
                    // Like histogram_quantile: an observation above the highest finite bound reports that bound.
                    return lowerBound;
                }

                double inBucket = count - lowerCount;
                return inBucket <= 0 ? bound : lowerBound + ((bound - lowerBound) * (rank - lowerCount) / inBucket);
            }

            lowerBound = bound;
            lowerCount = count;
        }

        return lowerBound;
    }
}
