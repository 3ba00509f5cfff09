using Prometheus;

namespace ContinualServe.Model.Telemetry;

/// <summary>Counters whose label values are known in advance.</summary>
internal static class CounterSeries
{
    /// <summary>
    /// Creates a counter with one label and the series of each of <paramref name="values"/> at 0. rate() and increase()
    /// do not count a series' first sample, so a series that appeared with its first event would hide that event from
    /// every rate, every dashboard panel and every alert built on it.
    /// </summary>
    public static Counter CreateAtZero(string name, string help, string label, IReadOnlyList<string> values)
    {
        Counter counter = Metrics.CreateCounter(name, help, new CounterConfiguration { LabelNames = [label] });
        foreach (string value in values)
        {
            counter.WithLabels(value).Inc(0);
        }

        return counter;
    }
}
