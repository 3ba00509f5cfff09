using System.Collections.Concurrent;
using ContinualServe.Learner.Publishing;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Publishing;

/// <summary>
/// The round-write watchdog on its own, with writes that end before or after the threshold and a next write that
/// starts right after a stalled one.
/// </summary>
public sealed class RoundWriteWatchdogTests
{
    [Fact(Timeout = 30_000)]
    public async Task FastWriteReportsNothing()
    {
        var stalls = new ConcurrentQueue<string>();
        var recoveries = new ConcurrentQueue<TimeSpan>();
        using var watchdog = new RoundWriteWatchdog(
            TimeSpan.FromMilliseconds(300), (path, _) => stalls.Enqueue(path), recoveries.Enqueue);

        watchdog.Start("/store");
        watchdog.Finish();
        await Task.Delay(TimeSpan.FromSeconds(1));

        stalls.ShouldBeEmpty();
        recoveries.ShouldBeEmpty();
        watchdog.IsStalled.ShouldBeFalse();
    }

    [Fact(Timeout = 30_000)]
    public async Task StalledWriteReportsOnceEach()
    {
        var stalls = new ConcurrentQueue<(string Path, TimeSpan Elapsed)>();
        var recoveries = new ConcurrentQueue<TimeSpan>();
        var threshold = TimeSpan.FromMilliseconds(100);
        using var watchdog = new RoundWriteWatchdog(threshold, (path, elapsed) => stalls.Enqueue((path, elapsed)), recoveries.Enqueue);

        watchdog.Start("/checkpoints");
        watchdog.Enter("/store");
        await Task.Delay(TimeSpan.FromSeconds(1));
        watchdog.IsStalled.ShouldBeTrue();
        watchdog.Finish();

        stalls.Count.ShouldBe(1);
        stalls.Single().Path.ShouldBe("/store");
        stalls.Single().Elapsed.ShouldBeGreaterThanOrEqualTo(threshold);
        recoveries.Count.ShouldBe(1);

        // Task.Delay can end a fraction of a millisecond before a Stopwatch measures its full length.
        recoveries.Single().ShouldBeGreaterThanOrEqualTo(TimeSpan.FromMilliseconds(900));
        watchdog.IsStalled.ShouldBeFalse();
    }

    // The next round's write starts as soon as the stalled one ends, and must be timed from its own start.
    [Fact(Timeout = 30_000)]
    public async Task NextWriteAfterStallStartsClean()
    {
        int stalls = 0;
        int recoveries = 0;
        using var watchdog = new RoundWriteWatchdog(
            TimeSpan.FromMilliseconds(300), (_, _) => Interlocked.Increment(ref stalls), _ => Interlocked.Increment(ref recoveries));

        watchdog.Start("/store");
        await Task.Delay(TimeSpan.FromSeconds(1));
        watchdog.Finish();
        watchdog.Start("/store");
        watchdog.IsStalled.ShouldBeFalse();
        watchdog.Finish();
        await Task.Delay(TimeSpan.FromSeconds(1));

        Volatile.Read(ref stalls).ShouldBe(1);
        Volatile.Read(ref recoveries).ShouldBe(1);

        watchdog.Start("/store");
        await Task.Delay(TimeSpan.FromSeconds(1));
        watchdog.Finish();

        Volatile.Read(ref stalls).ShouldBe(2);
        Volatile.Read(ref recoveries).ShouldBe(2);
    }
}
