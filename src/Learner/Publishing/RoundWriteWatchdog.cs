using System.Diagnostics;

namespace ContinualServe.Learner.Publishing;

/// <summary>
/// Timer that notices a round write (version save and checkpoint) running longer than a threshold, such as one blocked
/// in fsync by a hung NFS server. Nothing can cancel such a write, so the watchdog only reports it, once per write when
/// the threshold passes and once more when the stalled write ends.
/// </summary>
public sealed class RoundWriteWatchdog : IDisposable
{
    private readonly TimeSpan threshold;
    private readonly Action<string, TimeSpan> stalled;
    private readonly Action<TimeSpan> recovered;
    private readonly Lock writeLock = new();
    private readonly Timer timer;
    private long startedAt;
    private string path = "";
    private bool running;
    private bool isStalled;

    /// <param name="threshold">How long a write may run before it counts as stalled.</param>
    /// <param name="stalled">
    /// Called on a timer thread, under the watchdog's lock, with the path being written and the elapsed time, once per stalled write.
    /// </param>
    /// <param name="recovered">Called on the writing thread, under the watchdog's lock, with the write's total time when a stalled write ends.</param>
    public RoundWriteWatchdog(TimeSpan threshold, Action<string, TimeSpan> stalled, Action<TimeSpan> recovered)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(threshold, TimeSpan.Zero);
        this.threshold = threshold;
        this.stalled = stalled;
        this.recovered = recovered;
        timer = new Timer(_ => OnTimer(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>True from the moment a write passes the threshold until it ends.</summary>
    public bool IsStalled
    {
        get
        {
            lock (writeLock)
            {
                return isStalled;
            }
        }
    }

    /// <summary>Starts timing a write whose first step writes <paramref name="firstPath"/>.</summary>
    public void Start(string firstPath)
    {
        lock (writeLock)
        {
            startedAt = Stopwatch.GetTimestamp();
            path = firstPath;
            running = true;
            isStalled = false;
            timer.Change(threshold, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Records that the write moved on to <paramref name="nextPath"/>, which a stall warning then names.</summary>
    public void Enter(string nextPath)
    {
        lock (writeLock)
        {
            path = nextPath;
        }
    }

    /// <summary>Stops timing the write, and reports its total time when it had stalled.</summary>
    public void Finish()
    {
        // The callbacks run under the lock, so a stall report cannot land after the report of the write's end.
        lock (writeLock)
        {
            timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            bool wasStalled = running && isStalled;
            running = false;
            isStalled = false;
            if (wasStalled)
            {
                recovered(Stopwatch.GetElapsedTime(startedAt));
            }
        }
    }

    public void Dispose() => timer.Dispose();

    private void OnTimer()
    {
        lock (writeLock)
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
            stalled(path, elapsed);
        }
    }
}
