using ContinualServe.Server.Management;
using ContinualServe.Server.StatusPage;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.StatusPage;

/// <summary>The one-word state of the status page's learner section, when several conditions are true at once.</summary>
public sealed class LearnerSummaryTests
{
    private static readonly LearnerState Ready = new()
    {
        Running = true,
        Stopped = false,
        Ready = true,
        Paused = false,
        BrokerAvailable = true,
        Diverged = false,
        RoundWriteStalled = false,
        FileReadStalled = false,
        MarkerWriteStalled = false,
        GoldenSetUnusable = false,
        CurrentTask = 2,
        Trained = 500,
        Rejected = 1,
        Rollbacks = 0,
        LatestVersion = 7,
        ConsumerLag = 12,
        AssignedPartitions = 2,
    };

    public static TheoryData<string, LearnerState> States => new()
    {
        { "running", Ready },
        { "paused", Ready with { Ready = false, Paused = true } },
        { "paused", Ready with { Ready = false, Paused = true, ConsumerLag = null, AssignedPartitions = null } },
        { "joining", Ready with { Ready = false, ConsumerLag = null, AssignedPartitions = null } },
        { "joining", Ready with { Ready = false, ConsumerLag = null, AssignedPartitions = 1 } },
        { "broker_down", Ready with { Ready = false, BrokerAvailable = false, ConsumerLag = null, AssignedPartitions = null } },
        { "running", Ready with { ConsumerLag = 0, AssignedPartitions = 0 } },
        { "broker_down", Ready with { Ready = false, Paused = true, BrokerAvailable = false } },
        { "stalled", Ready with { Ready = false, BrokerAvailable = false, RoundWriteStalled = true } },
        { "stalled", Ready with { Ready = false, Paused = true, FileReadStalled = true } },
        { "stalled", Ready with { Ready = false, MarkerWriteStalled = true } },
        { "golden_set_unusable", Ready with { Ready = false, Paused = true, BrokerAvailable = false, GoldenSetUnusable = true } },
        { "stalled", Ready with { Ready = false, FileReadStalled = true, GoldenSetUnusable = true } },
        { "diverged", Ready with { Ready = false, Paused = true, Diverged = true, FileReadStalled = true } },
        { "stopped", Ready with { Running = false, Stopped = true, Ready = false, Diverged = true } },
        { "starting", Ready with { Running = false, Ready = false, ConsumerLag = null, AssignedPartitions = null } },
    };

    [Theory]
    [MemberData(nameof(States))]
    public void StateNamesFirstCondition(string expected, LearnerState learner)
    {
        LearnerSummary.From(learner).State.ShouldBe(expected);
    }

    [Fact]
    public void SummaryCopiesCounts()
    {
        LearnerSummary summary = LearnerSummary.From(Ready);

        summary.Ready.ShouldBeTrue();
        summary.CurrentTask.ShouldBe(2);
        summary.Trained.ShouldBe(500);
        summary.Rejected.ShouldBe(1);
        summary.LatestVersion.ShouldBe(7);
        summary.ConsumerLag.ShouldBe(12);
        summary.AssignedPartitions.ShouldBe(2);
    }

    [Fact]
    public void UnknownLagStaysNull()
    {
        LearnerSummary summary = LearnerSummary.From(Ready with { Ready = false, ConsumerLag = null, AssignedPartitions = null });

        summary.ConsumerLag.ShouldBeNull();
        summary.AssignedPartitions.ShouldBeNull();
    }
}
