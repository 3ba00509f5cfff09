using ContinualServe.Server.StatusPage;
using Shouldly;
using Xunit;

namespace ContinualServe.ObservabilityTests;

public sealed class HistogramQuantileTests
{
    [Fact]
    public void QuantileInterpolatesInsideBucket()
    {
        // 10 observations at most 0.1, 10 more at most 0.2: the median is the top of the first bucket,
        // the 75th percentile half-way through the second.
        (double, double)[] buckets = [(0.1, 10), (0.2, 20), (double.PositiveInfinity, 20)];

        HistogramQuantile.Estimate(0.5, buckets)!.Value.ShouldBe(0.1, 1e-12);
        HistogramQuantile.Estimate(0.75, buckets)!.Value.ShouldBe(0.15, 1e-12);
    }

    [Fact]
    public void EmptyAndOverflowingHistograms()
    {
        HistogramQuantile.Estimate(0.99, [(0.1, 0), (double.PositiveInfinity, 0)]).ShouldBeNull();
        HistogramQuantile.Estimate(0.99, [(0.1, 0), (double.PositiveInfinity, 4)])!.Value.ShouldBe(0.1);
    }
}
