namespace ContinualServe.Learner;

/// <summary>A consistent snapshot of the learner's progress, for progress displays and health checks.</summary>
public sealed record LearnerStatus
{
    public long Consumed { get; init; }

    public long Trained { get; init; }

    public long HeldOut { get; init; }

    public long Invalid { get; init; }

    public long Lost { get; init; }

    /// <summary>
    /// Records that retention had deleted before this learner first read their partition, without a checkpoint to
    /// resume from; not included in <see cref="Lost"/>.
    /// </summary>
    public long DeletedBeforeStart { get; init; }

    public int CurrentTask { get; init; }

    public double LastLoss { get; init; }

    public long LatestVersion { get; init; }

    /// <summary>Sum over assigned partitions of the next offset to consume.</summary>
    public long Position { get; init; }

    /// <summary>
    /// Records in the assigned partitions after <see cref="Position"/>, measured at each round and every 5 s
    /// between rounds while a broker responds (paused or not). Null while the lag is unknown: before the consumer group
    /// assigns partitions (after a start or a revocation) and until each assigned partition is measured, which the
    /// learner does right after the assignment. 0 when the group assigned no partition.
    /// </summary>
    public long? ConsumerLag { get; init; }

    /// <summary>
    /// Partitions in the consumer group's current assignment, or null before the group assigns any (after a start or a
    /// revocation). 0 when the group has more members than the topic has partitions and gives this learner none.
    /// </summary>
    public int? AssignedPartitions { get; init; }

    public IReadOnlyDictionary<int, double> AccuracyByTask { get; init; } = new Dictionary<int, double>();

    public bool IsRunning { get; init; }

    /// <summary>False while librdkafka reports all brokers down.</summary>
    public bool IsBrokerAvailable { get; init; } = true;

    public bool IsPaused { get; init; }

    /// <summary>Examples in the replay buffer after the last promoted round or checkpoint restore.</summary>
    public int ReplayExamples { get; init; }

    /// <summary>Rollbacks to the checkpoint after repeated non-finite losses.</summary>
    public long Rollbacks { get; init; }

    /// <summary>True when training kept diverging after rollbacks; learning is paused until resumed.</summary>
    public bool IsDiverged { get; init; }

    /// <summary>
    /// True while a round's write has run longer than <see cref="LearnerOptions.RoundWriteStallThreshold"/>. The
    /// learner is not ready meanwhile.
    /// </summary>
    public bool IsRoundWriteStalled { get; init; }

    /// <summary>
    /// True while a file read on the learner thread has run longer than <see cref="LearnerOptions.RoundWriteStallThreshold"/>:
    /// the pause marker's, the golden set's, the live version's reload after a rejected candidate, a rollback's
    /// checkpoint load, or the pin's and the pinned version's under <see cref="LearnerOptions.TrainFromPin"/>. The learner
    /// consumes nothing and is not ready meanwhile.
    /// </summary>
    public bool IsFileReadStalled { get; init; }

    /// <summary>
    /// True while the pause marker's write after training diverged has run longer than
    /// <see cref="LearnerOptions.RoundWriteStallThreshold"/>. The learner consumes nothing and is not ready meanwhile.
    /// </summary>
    public bool IsMarkerWriteStalled { get; init; }

    /// <summary>
    /// True while the learner holds a candidate because the golden set exists but cannot be read or does not fit the
    /// model. The learner consumes nothing, commits nothing and is not ready meanwhile.
    /// </summary>
    public bool IsGoldenSetUnusable { get; init; }

    /// <summary>Candidates the promotion gate rejected since the learner started.</summary>
    public long Rejected { get; init; }

    /// <summary>Sum over assigned partitions of the next offset to consume when the last round ended, promoted or rejected.</summary>
    public long RoundPosition { get; init; }
}
