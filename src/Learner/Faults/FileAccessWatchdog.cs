using System.Diagnostics;

namespace ContinualServe.Learner.Faults;

/// <summary>
/// Timer that notices a file access (a round write, or a read on the learner thread) running longer than a threshold,
/// such as one blocked in fsync or read by a hung NFS server. Nothing can cancel such an access, so the watchdog only
/// reports it, once per access when the threshold passes and once more when the stalled access ends.
/// </summary>
public sealed class FileAccessWatchdog : IDisposable
{
    private readonly TimeSpan threshold;
    private readonly Action<WatchedFileAccess, TimeSpan> stalled;
    private readonly Action<WatchedFileAccess, TimeSpan> recovered;
    private readonly Lock accessLock = new();
    private readonly Timer timer;
    private long startedAt;
    private WatchedFileAccess access;
    private WatchedFileAccess stalledAccess;
    private bool running;
    private bool isStalled;

    /// <param name="threshold">How long an access may run before it counts as stalled.</param>
    /// <param name="stalled">
    /// Called on a timer thread, under the watchdog's lock, with the access and its elapsed time, once per stalled access.
    /// </param>
    /// <param name="recovered">
    /// Called on the accessing thread, under the watchdog's lock, when a stalled access ends, with the access as the stall
    /// report named it and the access's total time.
    /// </param>
    public FileAccessWatchdog(TimeSpan threshold, Action<WatchedFileAccess, TimeSpan> stalled, Action<WatchedFileAccess, TimeSpan> recovered)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(threshold, TimeSpan.Zero);
        this.threshold = threshold;
        this.stalled = stalled;
        this.recovered = recovered;
        timer = new Timer(_ => OnTimer(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>True from the moment an access passes the threshold until it ends.</summary>
    public bool IsStalled
    {
        get
        {
            lock (accessLock)
            {
                return isStalled;
            }
        }
    }

    /// <summary>Starts timing <paramref name="operation"/>, whose first step accesses <paramref name="firstPath"/>.</summary>
    public void Start(string operation, string firstPath)
    {
        lock (accessLock)
        {
            startedAt = Stopwatch.GetTimestamp();
            access = new WatchedFileAccess(operation, firstPath);
            running = true;
            isStalled = false;
            timer.Change(threshold, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Records that the access moved on to <paramref name="nextPath"/>, which a stall warning then names.</summary>
    public void Enter(string nextPath)
    {
        lock (accessLock)
        {
            access = access with { Path = nextPath };
        }
    }

    /// <summary>Stops timing the access, and reports its total time when it had stalled.</summary>
    public void Finish()
    {
        // The callbacks run under the lock, so a stall report cannot land after the report of the access's end.
        lock (accessLock)
        {
            timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            bool wasStalled = running && isStalled;
            running = false;
            isStalled = false;
            if (wasStalled)
            {
                recovered(stalledAccess, Stopwatch.GetElapsedTime(startedAt));
            }
        }
    }

    public void Dispose() => timer.Dispose();

    private void OnTimer()
    {
        lock (accessLock)
        {
            // A timer callback can run after Finish or after the next Start rearmed the timer, so it checks both.
            TimeSpan elapsed = Stopwatch.GetElapsedTime(startedAt);
            if (!running || isStalled)
            {
                return;
            }

            // The timer's clock is coarser than Stopwatch and can fire a few milliseconds early.
            if (elapsed < threshold)
            {
                timer.Change(threshold - elapsed, Timeout.InfiniteTimeSpan);
                return;
            }

            isStalled = true;
            stalledAccess = access;
            stalled(access, elapsed);
        }
    }
}
