using ContinualServe.Server.Management;

namespace ContinualServe.Server.StatusPage;

/// <summary>
/// The status page's learner section. <see cref="State"/> is one word for the learner's condition: starting, stopped,
/// diverged, stalled, golden_set_unusable, broker_down, paused, joining or running, the first that applies in that order. starting means
/// that the learner thread has not run yet: the process loads its starting version and checkpoint. joining means that
/// the learner waits for the consumer group to assign partitions, or has not measured their lag yet.
/// <see cref="ConsumerLag"/> and <see cref="AssignedPartitions"/> are null while unknown.
/// </summary>
public sealed record LearnerSummary(
    string State,
    bool Ready,
    int CurrentTask,
    long Trained,
    long Rejected,
    long LatestVersion,
    long? ConsumerLag,
    int? AssignedPartitions)
{
    public static LearnerSummary From(LearnerState learner)
    {
        ArgumentNullException.ThrowIfNull(learner);
        return new LearnerSummary(
            Describe(learner),
            learner.Ready,
            learner.CurrentTask,
            learner.Trained,
            learner.Rejected,
            learner.LatestVersion,
            learner.ConsumerLag,
            learner.AssignedPartitions);
    }

    // Faults come before a pause, which an operator sets on purpose. A diverged learner is also paused, so it comes first.
    private static string Describe(LearnerState learner) => learner switch
    {
        { Running: false, Stopped: false } => "starting",
        { Running: false } => "stopped",
        { Diverged: true } => "diverged",
        { RoundWriteStalled: true } or { FileReadStalled: true } or { MarkerWriteStalled: true } => "stalled",
        { GoldenSetUnusable: true } => "golden_set_unusable",
        { BrokerAvailable: false } => "broker_down",
        { Paused: true } => "paused",
        { ConsumerLag: null } => "joining",
        _ => "running",
    };
}
