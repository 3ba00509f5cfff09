using System.Globalization;

namespace ContinualServe.Server.Demo;

/// <summary>
/// Retention of demo run directories, each with a model store, checkpoints and reports (30 to 70 MB), so that
/// repeated demos do not fill the disk. Only directories named as the demo names them are touched.
/// </summary>
public static class DemoRunRetention
{
    /// <summary>Prefix of a run directory's name, followed by its UTC start time.</summary>
    public const string Prefix = "demo-";

    /// <summary>Start-time format of a run directory's name, after <see cref="Prefix"/>.</summary>
    public const string TimestampFormat = "yyyyMMdd-HHmmss-fff";

    /// <summary>
    /// Deletes the run directories under <paramref name="runsDirectory"/> other than the newest
    /// <paramref name="keep"/> and returns the paths deleted, oldest first. <paramref name="currentRun"/>, when given,
    /// is always kept and counts toward <paramref name="keep"/>. A keep of 0 deletes nothing.
    /// </summary>
    public static IReadOnlyList<string> DeleteOldest(string runsDirectory, int keep, string? currentRun = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(keep);
        if (keep == 0 || !Directory.Exists(runsDirectory))
        {
            return [];
        }

        // The timestamp format sorts in time order as text.
        string[] runs = Directory.EnumerateDirectories(runsDirectory, Prefix + "*")
            .Where(IsRunDirectory)
            .Where(run => currentRun is null || !IsSameDirectory(run, currentRun))
            .Order(StringComparer.Ordinal)
            .ToArray();
        int othersKept = currentRun is null ? keep : keep - 1;
        string[] deleted = runs[..Math.Max(0, runs.Length - othersKept)];
        foreach (string run in deleted)
        {
            Directory.Delete(run, recursive: true);
        }

        return deleted;
    }

    /// <summary>Returns the name of a new run directory started at <paramref name="startedUtc"/>.</summary>
    public static string RunName(DateTime startedUtc) => Prefix + startedUtc.ToString(TimestampFormat, CultureInfo.InvariantCulture);

    private static bool IsSameDirectory(string first, string second) =>
        string.Equals(Path.GetFullPath(first).TrimEnd(Path.DirectorySeparatorChar), Path.GetFullPath(second).TrimEnd(Path.DirectorySeparatorChar), StringComparison.Ordinal);

    private static bool IsRunDirectory(string path) =>
        DateTime.TryParseExact(
            Path.GetFileName(path).AsSpan(Prefix.Length), TimestampFormat, CultureInfo.InvariantCulture, DateTimeStyles.None, out _);
}
