using System.Globalization;

namespace ContinualServe.Benchmarks;

/// <summary>
/// CPU time used so far by each thread of this process, read from /proc/self/task. The reading is empty
/// on systems without /proc, so every group then reads zero.
/// </summary>
internal sealed class ThreadTimes
{
    // Linux reports thread CPU time in clock ticks of 1/100 s (USER_HZ, 100 on mainstream distributions).
    private const double TicksPerSecond = 100;

    private readonly Dictionary<int, (string Name, long Ticks)> threads = [];

    public static ThreadTimes Read()
    {
        var times = new ThreadTimes();
        if (!Directory.Exists("/proc/self/task"))
        {
            return times;
        }

        foreach (string directory in Directory.EnumerateDirectories("/proc/self/task"))
        {
            if (TryReadThread(directory, out string name, out long ticks))
            {
                times.threads[int.Parse(Path.GetFileName(directory), CultureInfo.InvariantCulture)] = (name, ticks);
            }
        }

        return times;
    }

    /// <summary>Returns the CPU time the calling thread has used so far, or zero on systems without /proc.</summary>
    public static TimeSpan CurrentThread() =>
        TryReadThread("/proc/thread-self", out _, out long ticks) ? TimeSpan.FromSeconds(ticks / TicksPerSecond) : TimeSpan.Zero;

    /// <summary>Returns the CPU time each group of threads used between <paramref name="start"/> and this reading.</summary>
    public CpuUsage Since(ThreadTimes start, TimeSpan wall)
    {
        var groups = new Dictionary<string, long>();
        foreach ((int id, (string name, long ticks)) in threads)
        {
            long earlier = start.threads.TryGetValue(id, out (string Name, long Ticks) first) ? first.Ticks : 0;
            string group = Group(name);
            groups[group] = groups.GetValueOrDefault(group) + ticks - earlier;
        }

        TimeSpan Time(string group) => TimeSpan.FromSeconds(groups.GetValueOrDefault(group) / TicksPerSecond);
        return new CpuUsage(wall, Time("learner"), Time("pool"), Time("kafka"), Time("jit"), Time("other"));
    }

    // Linux keeps the first 15 bytes of a thread's name: "continualserve-learner" reads "continualserve-".
    private static string Group(string name) => name switch
    {
        _ when name.StartsWith("continualserve", StringComparison.Ordinal) => "learner",
        _ when name.StartsWith(".NET TP", StringComparison.Ordinal) => "pool",
        _ when name.StartsWith("rdk:", StringComparison.Ordinal) => "kafka",
        _ when name.StartsWith(".NET Tiered", StringComparison.Ordinal) => "jit",
        _ => "other",
    };

    // A line of /proc/self/task/<tid>/stat reads "tid (name) state ...", with utime and stime as fields 14 and 15.
    private static bool TryReadThread(string directory, out string name, out long ticks)
    {
        name = "";
        ticks = 0;
        string stat;
        try
        {
            stat = File.ReadAllText(Path.Combine(directory, "stat"));
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return false; // The thread exited after the directory was listed, or there is no /proc.
        }

        int open = stat.IndexOf('(', StringComparison.Ordinal);
        int close = stat.LastIndexOf(')');
        if (open < 0 || close < open)
        {
            return false;
        }

        name = stat[(open + 1)..close];
        string[] fields = stat[(close + 2)..].Split(' ');
        ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return true;
    }
}

/// <summary>
/// CPU time of the benchmark process over one measurement, by thread group. Thread-pool threads run the learner's
/// record decoding, its version and checkpoint writes and, when it runs in this process, the example producer, so
/// this record cannot separate them.
/// </summary>
internal sealed record CpuUsage(TimeSpan Wall, TimeSpan Learner, TimeSpan ThreadPool, TimeSpan Kafka, TimeSpan Jit, TimeSpan Other)
{
    public TimeSpan Total => Learner + ThreadPool + Kafka + Jit + Other;

    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"{Total.TotalSeconds:F2} s CPU in {Wall.TotalSeconds:F2} s: learner thread {Learner.TotalSeconds:F2} s, thread pool (decoding, version writes; producer when it runs) {ThreadPool.TotalSeconds:F2} s, librdkafka {Kafka.TotalSeconds:F2} s, JIT {Jit.TotalSeconds:F2} s, other {Other.TotalSeconds:F2} s");
}
