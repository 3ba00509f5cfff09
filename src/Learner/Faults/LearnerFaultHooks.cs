namespace ContinualServe.Learner.Faults;

/// <summary>
/// Test seams that let the learner's tests inject failures and delays where no real fault can be caused on demand,
/// such as a consumer whose close throws or a disk whose fsync hangs. Every hook is null, and does nothing, outside tests.
/// </summary>
internal sealed class LearnerFaultHooks
{
    /// <summary>Runs on the learner thread before each read from the consumer.</summary>
    public Action? BeforeConsume { get; set; }

    /// <summary>Runs on the learner thread before each poll with the partitions paused, during a round's work or file work.</summary>
    public Action? BeforePausedPoll { get; set; }

    /// <summary>
    /// Runs on a thread-pool task before each read of the store's pause marker, inside its stall watch, while the learner
    /// thread polls the consumer.
    /// </summary>
    public Action? BeforePauseMarkerRead { get; set; }

    /// <summary>
    /// Runs on a thread-pool task before the pause marker is written after training diverged, inside its stall watch,
    /// while the learner thread polls the consumer.
    /// </summary>
    public Action? BeforePauseMarkerWrite { get; set; }

    /// <summary>
    /// Runs on a thread-pool task before each read of the golden set, inside its stall watch, while the learner thread
    /// polls the consumer.
    /// </summary>
    public Action? BeforeGoldenSetRead { get; set; }

    /// <summary>
    /// Runs on the learner thread before each forward batch of a round's evaluations (holdout sets, analytic calibration,
    /// golden set), after the consumer was polled when a poll was due.
    /// </summary>
    public Action? BeforeEvaluationBatch { get; set; }

    /// <summary>
    /// Runs on a thread-pool task after a rejected candidate, before the live version's weights are loaded, inside the
    /// reload's stall watch, while the learner thread polls the consumer.
    /// </summary>
    public Action? BeforeLiveVersionReload { get; set; }

    /// <summary>
    /// Runs on a thread-pool task before each read of the store's pin under Learner:TrainFromPin, inside its stall watch,
    /// while the learner thread polls the consumer once it exists.
    /// </summary>
    public Action? BeforePinRead { get; set; }

    /// <summary>
    /// Runs on a thread-pool task before the files of a pinned version that becomes the base are read, inside the read's
    /// stall watch, while the learner thread polls the consumer once it exists.
    /// </summary>
    public Action? BeforePinnedVersionLoad { get; set; }

    /// <summary>
    /// Runs on a thread-pool task before a rollback finds and reads the newest checkpoint, inside the load's stall watch,
    /// while the learner thread polls the consumer.
    /// </summary>
    public Action? BeforeRollbackLoad { get; set; }

    /// <summary>Runs on the learner thread before the training log is flushed for a checkpoint, when the log is written.</summary>
    public Action? BeforeTrainingLogFlush { get; set; }

    /// <summary>Runs on the learner thread before a promoted round's optimizer and teacher files are written.</summary>
    public Action? BeforeCheckpointPrepare { get; set; }

    /// <summary>Runs on the round-write task after the checkpoint's files are written, before the version is saved.</summary>
    public Action? BeforeRoundWrite { get; set; }

    /// <summary>
    /// Runs on a thread-pool task before the weights, optimizer and teacher files of the checkpoint of a rejected round or
    /// of a pinned base are written, while the learner thread polls the consumer.
    /// </summary>
    public Action? BeforeModuleFilesWrite { get; set; }

    /// <summary>
    /// Runs on a thread-pool task before the checkpoint of a rejected round or of a pinned base is completed (its replay
    /// and holdout files written, every file flushed, the directory renamed), while the learner thread polls the consumer.
    /// </summary>
    public Action? BeforeCheckpointWrite { get; set; }

    /// <summary>Runs on the learner thread before the consumer is closed.</summary>
    public Action? BeforeLeaveGroup { get; set; }

    /// <summary>Runs on the learner thread when the Kafka clients are disposed, before the dead-letter producer closes.</summary>
    public Action? BeforeDeadLetterClose { get; set; }
}
