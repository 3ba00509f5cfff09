using System.ComponentModel;
using ContinualServe.Learner;

namespace ContinualServe.Server.Management;

/// <summary>
/// The state of the learner that runs in this process, as GET /manage/v1/learning and the learn role's
/// /learner/v1/status return it.
/// </summary>
public sealed record LearnerState
{
    [Description("True while the learner thread runs. False before the start, after a stop and after an error ended it.")]
    public required bool Running { get; init; }

    [Description("True once the learner thread has ended, after a stop or an error. False before the start and while it runs.")]
    public required bool Stopped { get; init; }

    [Description(
        "Whether the learner is ready, by the conditions of the gauge continualserve_learner_ready: it runs, reaches its "
        + "brokers, has measured its consumer lag (consumerLag is not null), is neither paused nor diverged, and has no stalled "
        + "round write, file read or marker write.")]
    public required bool Ready { get; init; }

    [Description(
        "True once the learner has applied a pause. The learner reads the pause marker in the model store twice a second, "
        + "so this can trail the marker by about 0.5 s.")]
    public required bool Paused { get; init; }

    [Description("False while the learner's broker checks fail: a partition leader or the group coordinator does not respond.")]
    public required bool BrokerAvailable { get; init; }

    [Description("True when training kept diverging after rollbacks. Learning stays paused until resumed.")]
    public required bool Diverged { get; init; }

    [Description("True while a round's write has run longer than Learner:RoundWriteStallThreshold.")]
    public required bool RoundWriteStalled { get; init; }

    [Description(
        "True while a file read on the learner thread (pause marker, golden set, live-version reload, rollback checkpoint, "
        + "and the pin and the pinned version under Learner:TrainFromPin) has run longer than Learner:RoundWriteStallThreshold.")]
    public required bool FileReadStalled { get; init; }

    [Description(
        "True while the pause marker's write after training diverged has run longer than Learner:RoundWriteStallThreshold. "
        + "diverged turns true once the write returns.")]
    public required bool MarkerWriteStalled { get; init; }

    [Description(
        "True while the learner holds a candidate because the golden set exists but cannot be read or does not fit the "
        + "model. The learner consumes and commits nothing until the golden set is fixed or removed.")]
    public required bool GoldenSetUnusable { get; init; }

    [Description("Task of the newest valid example consumed. A restarted learner starts from the task it last saw, a new one from 0.")]
    public required int CurrentTask { get; init; }

    [Description("Examples trained in the promoted rounds since this learner started.")]
    public required long Trained { get; init; }

    [Description("Candidates the promotion gate rejected since this learner started.")]
    public required long Rejected { get; init; }

    [Description("Rollbacks to the checkpoint after repeated non-finite losses since this learner started.")]
    public required long Rollbacks { get; init; }

    [Description("The newest version that the learner published, or the version it started from.")]
    public required long LatestVersion { get; init; }

    [Description(
        "Records in the assigned partitions after the learner's position, measured at each round and every 5 s between "
        + "rounds. Null while unknown: before the consumer group assigns partitions, after a start or during a rebalance, "
        + "and until the learner has measured each of them. 0 when the group assigned the learner no partition.")]
    public required long? ConsumerLag { get; init; }

    [Description(
        "Partitions the consumer group assigned to the learner. Null before the group assigns any, after a start or during "
        + "a rebalance. 0 when the group has more members than the topic has partitions.")]
    public required int? AssignedPartitions { get; init; }

    /// <summary>Copies the learner's status snapshot and its readiness, which has the ready gauge's conditions.</summary>
    public static LearnerState Capture(ContinualLearner learner)
    {
        ArgumentNullException.ThrowIfNull(learner);
        LearnerStatus status = learner.Status;
        return new LearnerState
        {
            Running = status.IsRunning,
            Stopped = learner.HasStopped,
            Ready = learner.IsReady,
            Paused = status.IsPaused,
            BrokerAvailable = status.IsBrokerAvailable,
            Diverged = status.IsDiverged,
            RoundWriteStalled = status.IsRoundWriteStalled,
            FileReadStalled = status.IsFileReadStalled,
            MarkerWriteStalled = status.IsMarkerWriteStalled,
            GoldenSetUnusable = status.IsGoldenSetUnusable,
            CurrentTask = status.CurrentTask,
            Trained = status.Trained,
            Rejected = status.Rejected,
            Rollbacks = status.Rollbacks,
            LatestVersion = status.LatestVersion,
            ConsumerLag = status.ConsumerLag,
            AssignedPartitions = status.AssignedPartitions,
        };
    }
}
