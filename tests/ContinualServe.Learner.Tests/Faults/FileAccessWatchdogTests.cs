using System.Collections.Concurrent;
using System.Diagnostics;
using ContinualServe.Learner.Faults;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// The file-access watchdog on its own, with accesses that end before or after the threshold and a next access that
/// starts right after a stalled one.
/// </summary>
public sealed class FileAccessWatchdogTests
{
    [Fact(Timeout = 30_000)]
    public async Task FastWriteReportsNothing()
    {
        var stalls = new ConcurrentQueue<string>();
        var recoveries = new ConcurrentQueue<TimeSpan>();
        using var watchdog = new FileAccessWatchdog(
            TimeSpan.FromMilliseconds(300), (access, _) => stalls.Enqueue(access.Path), (_, elapsed) => recoveries.Enqueue(elapsed));

        watchdog.Start("round write", "/store");
        watchdog.Finish();
        await Task.Delay(TimeSpan.FromSeconds(1));

        stalls.ShouldBeEmpty();
        recoveries.ShouldBeEmpty();
        watchdog.IsStalled.ShouldBeFalse();
    }

    [Fact(Timeout = 30_000)]
    public async Task StalledWriteReportsOnceEach()
    {
        var stalls = new ConcurrentQueue<(WatchedFileAccess Access, TimeSpan Elapsed)>();
        var recoveries = new ConcurrentQueue<(WatchedFileAccess Access, TimeSpan Elapsed)>();
        var threshold = TimeSpan.FromMilliseconds(100);
        using var watchdog = new FileAccessWatchdog(
            threshold, (access, elapsed) => stalls.Enqueue((access, elapsed)), (access, elapsed) => recoveries.Enqueue((access, elapsed)));

        watchdog.Start("round write", "/checkpoints");
        var sinceStart = Stopwatch.StartNew();
        watchdog.Enter("/store");
        await LearnerHarness.WaitUntilAsync(
            () => watchdog.IsStalled, "an access past the threshold was not reported stalled");
        TimeSpan elapsedBeforeFinish = sinceStart.Elapsed;

        // The recovery names the path that stalled, not one that the access reached after it.
        watchdog.Enter("/checkpoints/2");
        watchdog.Finish();

        stalls.Count.ShouldBe(1);
        stalls.Single().Access.ShouldBe(new WatchedFileAccess("round write", "/store"));
        stalls.Single().Elapsed.ShouldBeGreaterThanOrEqualTo(threshold);
        recoveries.Count.ShouldBe(1);
        recoveries.Single().Access.ShouldBe(new WatchedFileAccess("round write", "/store"));

        // The recovery reports the access's whole time from its start, not the time since the stall report.
        recoveries.Single().Elapsed.ShouldBeGreaterThanOrEqualTo(elapsedBeforeFinish);
        watchdog.IsStalled.ShouldBeFalse();
    }

    // The next round's write starts as soon as the stalled one ends, and must be timed from its own start.
    [Fact(Timeout = 30_000)]
    public async Task NextWriteAfterStallStartsClean()
    {
        int stalls = 0;
        int recoveries = 0;
        using var watchdog = new FileAccessWatchdog(
            TimeSpan.FromMilliseconds(300), (_, _) => Interlocked.Increment(ref stalls), (_, _) => Interlocked.Increment(ref recoveries));

        watchdog.Start("round write", "/store");
        await LearnerHarness.WaitUntilAsync(() => watchdog.IsStalled, "the first write was not reported stalled");
        watchdog.Finish();
        watchdog.Start("round write", "/store");
        watchdog.IsStalled.ShouldBeFalse();
        watchdog.Finish();

        // A stall report for the short second write would land within this wait, which is past the threshold.
        await Task.Delay(TimeSpan.FromSeconds(1));

        Volatile.Read(ref stalls).ShouldBe(1);
        Volatile.Read(ref recoveries).ShouldBe(1);

        watchdog.Start("round write", "/store");
        await LearnerHarness.WaitUntilAsync(() => watchdog.IsStalled, "the third write was not reported stalled");
        watchdog.Finish();

        Volatile.Read(ref stalls).ShouldBe(2);
        Volatile.Read(ref recoveries).ShouldBe(2);
    }

    // One watchdog times the learner thread's reads one after another, and each report names the operation that stalled.
    [Fact(Timeout = 30_000)]
    public async Task ReportsNameEachOperation()
    {
        var stalls = new ConcurrentQueue<WatchedFileAccess>();
        var recoveries = new ConcurrentQueue<WatchedFileAccess>();
        using var watchdog = new FileAccessWatchdog(
            TimeSpan.FromMilliseconds(100), (access, _) => stalls.Enqueue(access), (access, _) => recoveries.Enqueue(access));

        watchdog.Start("golden set read", "/store/golden-set.json");
        await LearnerHarness.WaitUntilAsync(() => watchdog.IsStalled, "the golden set read was not reported stalled");
        watchdog.Finish();
        watchdog.Start("reload", "/checkpoints");
        watchdog.Enter("/store/2/weights.bin");
        await LearnerHarness.WaitUntilAsync(() => watchdog.IsStalled, "the reload was not reported stalled");
        watchdog.Finish();

        stalls.ShouldBe([new("golden set read", "/store/golden-set.json"), new("reload", "/store/2/weights.bin")]);
        recoveries.ShouldBe([new("golden set read", "/store/golden-set.json"), new("reload", "/store/2/weights.bin")]);
    }
}
