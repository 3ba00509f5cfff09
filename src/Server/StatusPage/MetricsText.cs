using System.Globalization;
using System.Text;
using Prometheus;

namespace ContinualServe.Server.StatusPage;

/// <summary>
/// Reads this process's own metrics through the Prometheus text exposition, the same numbers a scrape returns.
/// prometheus-net exposes no per-bucket counts through its API, so the histogram is read from the text.
/// </summary>
internal static class MetricsText
{
    public static async Task<string> CollectAsync(CancellationToken cancellation)
    {
        using var stream = new MemoryStream();
        await Metrics.DefaultRegistry.CollectAndExportAsTextAsync(stream, cancellation).ConfigureAwait(false);
        return Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length);
    }

    /// <summary>Sums the samples of <paramref name="name"/> whose labels include every pair in <paramref name="labels"/>, grouped by <paramref name="groupLabel"/>.</summary>
    public static Dictionary<string, double> SumBy(string text, string name, string groupLabel, params (string Name, string Value)[] labels)
    {
        var sums = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach ((string sampleName, Dictionary<string, string> sampleLabels, double value) in Samples(text))
        {
            if (sampleName != name || !labels.All(label => sampleLabels.TryGetValue(label.Name, out string? seen) && seen == label.Value))
            {
                continue;
            }

            string group = sampleLabels.TryGetValue(groupLabel, out string? key) ? key : "";
            sums[group] = sums.GetValueOrDefault(group) + value;
        }

        return sums;
    }

    private static IEnumerable<(string Name, Dictionary<string, string> Labels, double Value)> Samples(string text)
    {
        foreach (string line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            int braceStart = line.IndexOf('{', StringComparison.Ordinal);
            int braceEnd = line.LastIndexOf('}');
            int space = line.LastIndexOf(' ');
            if (space < 0 || !double.TryParse(line.AsSpan(space + 1), NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
            {
                continue;
            }

            if (braceStart < 0 || braceEnd < braceStart)
            {
                yield return (line[..space].Trim(), [], value);
                continue;
            }

            yield return (line[..braceStart], ParseLabels(line[(braceStart + 1)..braceEnd]), value);
        }
    }

    // Label values written by prometheus-net here never contain quotes or commas (model names, outcomes, bucket bounds).
    private static Dictionary<string, string> ParseLabels(string labels)
    {
        var parsed = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string pair in labels.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            int equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0)
            {
                parsed[pair[..equals].Trim()] = pair[(equals + 1)..].Trim().Trim('"');
            }
        }

        return parsed;
    }
}
