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

    // Parses name="value" pairs. A value is quoted and may contain commas, braces and the escapes \\, \" and \n of
    // the text format, because a model name is any string that configuration gives.
    private static Dictionary<string, string> ParseLabels(string labels)
    {
        var parsed = new Dictionary<string, string>(StringComparer.Ordinal);
        int position = 0;
        while (position < labels.Length)
        {
            int equals = labels.IndexOf('=', position);
            int open = equals < 0 ? -1 : labels.IndexOf('"', equals);
            if (open < 0)
            {
                break;
            }

            string name = labels[position..equals].Trim(' ', ',');
            (string value, int end) = ReadQuotedValue(labels, open + 1);
            parsed[name] = value;
            position = end + 1;
        }

        return parsed;
    }

    // Reads the escaped label value from index start up to its closing quote. Returns the value and the quote's index.
    private static (string Value, int End) ReadQuotedValue(string labels, int start)
    {
        var value = new StringBuilder();
        int index = start;
        for (; index < labels.Length && labels[index] != '"'; index++)
        {
            char character = labels[index];
            if (character == '\\' && index + 1 < labels.Length)
            {
                index++;
                character = labels[index] == 'n' ? '\n' : labels[index];
            }

            value.Append(character);
        }

        return (value.ToString(), index);
    }
}
