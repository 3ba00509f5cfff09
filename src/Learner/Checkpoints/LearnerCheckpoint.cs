using System.Text.Json;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using ContinualServe.Model.Store;

namespace ContinualServe.Learner.Checkpoints;

/// <summary>
/// Metadata of one learner checkpoint, stored as checkpoint.json beside its data files. The checkpoint contains
/// everything the learner needs to continue as if it had not stopped: weights, optimizer state, replay buffer,
/// holdout sets, accuracy matrix and the next offset to consume on each partition.
/// </summary>
public sealed record LearnerCheckpoint
{
    public const string MetadataFileName = "checkpoint.json";
    public const string WeightsFileName = "weights.bin";
    public const string OptimizerFileName = "optimizer.bin";
    public const string ReplayFileName = "replay.bin";
    public const string HoldoutsFileName = "holdouts.bin";
    public const string TeacherFileName = "teacher.bin";

    /// <summary>Increases by one with every checkpoint written to the same directory.</summary>
    public long Sequence { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>
    /// The model store version this checkpoint's weights belong to: the version published in the same round, or the live
    /// version for a checkpoint written at start, after a rejected round or when a pinned version became the base.
    /// </summary>
    public long ModelVersion { get; init; }

    public long ExamplesTrained { get; init; }

    /// <summary>
    /// True for a checkpoint written when Learner:TrainFromPin made the pinned <see cref="ModelVersion"/> the learner's
    /// base, and for the checkpoints of rejected rounds on that base, so a version older than the store's newest is the
    /// base on purpose.
    /// </summary>
    public bool FromPin { get; init; }

    public int CurrentTask { get; init; }

    /// <summary>Next offset to consume on each partition; the restarted learner seeks to these.</summary>
    public IReadOnlyList<TrainingOffset> Offsets { get; init; } = [];

    /// <summary>
    /// Identity of the record before each offset in <see cref="Offsets"/> that the learner read, which a restart compares
    /// with the topic's record there. Null in checkpoints written before it was saved.
    /// </summary>
    public IReadOnlyList<RecordIdentity>? LastRecords { get; init; }

    public EvaluationSummary Evaluation { get; init; } = new();

    /// <summary>Examples offered to the replay buffer so far, stored or not.</summary>
    public long ReplaySeen { get; init; }

    /// <summary>
    /// Examples offered to the replay buffer per class label, for buffers that sample within each class; null in
    /// checkpoints written before it was saved.
    /// </summary>
    public IReadOnlyDictionary<int, long>? ReplaySeenByClass { get; init; }

    /// <summary>
    /// The trainer's task, seen classes and LwF teacher classes; null in checkpoints written before it was saved.
    /// The teacher's weights are in <see cref="TeacherFileName"/> when the trainer had a teacher.
    /// </summary>
    public TrainerProgress? TrainerProgress { get; init; }

    /// <summary>
    /// Length in bytes of the training log that this checkpoint includes, or null when the learner that wrote it kept no
    /// log. Checkpoints written before null was used have 0 without a log.
    /// </summary>
    public long? TrainingLogBytes { get; init; }

    /// <summary>Lower-case hex SHA-256 of each data file, by file name, checked before the checkpoint is used.</summary>
    public IReadOnlyDictionary<string, string> FileSha256 { get; init; } = new Dictionary<string, string>();

    public static JsonSerializerOptions JsonOptions => ModelSpec.JsonOptions;
}
