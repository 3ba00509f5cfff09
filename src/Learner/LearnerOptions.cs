using System.ComponentModel.DataAnnotations;
using ContinualServe.Learner.Promotion;
using ContinualServe.Learner.Training;
using ContinualServe.Model;

namespace ContinualServe.Learner;

/// <summary>Settings of the learner: where examples come from, where versions go, and how often.</summary>
public sealed class LearnerOptions
{
    public const string SectionName = "Learner";

    /// <summary>Kafka bootstrap servers, e.g. "127.0.0.1:9092".</summary>
    [Required(ErrorMessage = "Learner:BootstrapServers is missing. Pass --bootstrap-servers HOST:PORT, or set Learner__BootstrapServers.")]
    public string BootstrapServers { get; set; } = "";

    [Required]
    public string Topic { get; set; } = "fashion-mnist";

    [Required]
    public string GroupId { get; set; } = "continualserve-learner";

    /// <summary>Topic for records that fail validation; empty means "&lt;Topic&gt;.dlq".</summary>
    public string DeadLetterTopic { get; set; } = "";

    /// <summary>
    /// Kafka consumer session timeout; a rebalance on the embedded broker waits about this long minus 1 s. The range is
    /// librdkafka's for session.timeout.ms (1 to 3,600,000 ms in the librdkafka of Confluent.Kafka 2.16.0), so a
    /// value that the consumer would reject stops the start.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "01:00:00", ParseLimitsInInvariantCulture = true, ConvertValueInInvariantCulture = true,
        ErrorMessage = "Learner:SessionTimeout must be from 00:00:00.001 to 01:00:00 (librdkafka's range for session.timeout.ms). Write it as hh:mm:ss, for example 00:00:10; a bare number counts days.")]
    public TimeSpan SessionTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Directory of the model store the learner publishes to.</summary>
    [Required]
    public string StoreDirectory { get; set; } = "models";

    /// <summary>Versions kept in the store; older ones are deleted.</summary>
    [Range(1, 10_000)]
    public int RetainedVersions { get; set; } = 20;

    /// <summary>Training device: auto, cpu, cuda or cuda:N.</summary>
    public string Device { get; set; } = "auto";

    /// <summary>A round (evaluate, publish, commit offsets) runs after this many trained examples, at each task change, and when the stream goes idle.</summary>
    [Range(1, 10_000_000)]
    public int RoundExamples { get; set; } = 1000;

    /// <summary>The stream counts as idle after this long without records; pending work is then trained and published.</summary>
    [DurationRange("00:00:00.010", "01:00:00")]
    public TimeSpan IdleRoundDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// A round's write (version save and checkpoint) running longer than this is logged once as stalled, and the learner
    /// reports itself not ready until the write ends. A write blocked by the disk (a hung NFS fsync) cannot be cancelled,
    /// so the next round waits for it. The same threshold applies to the learner thread's reads of the store: the pause
    /// marker, the golden set, the live version after a rejected candidate, a rollback's checkpoint, and the pin and the
    /// pinned version under <see cref="TrainFromPin"/>. It applies as well to the pause marker's write after training
    /// diverged. 2 minutes by default.
    /// </summary>
    [DurationRange("00:00:00.100", "1.00:00:00")]
    public TimeSpan RoundWriteStallThreshold { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Makes the learner train from the store's pinned version when a rollback pins one older than the version it
    /// trains from. At the next round boundary it discards the training since the last round and takes the pinned
    /// version's weights, with a fresh optimizer, as its base. False by default, so a pin changes only what the
    /// servers serve.
    /// </summary>
    public bool TrainFromPin { get; set; }

    /// <summary>
    /// Action of the start when the record before a partition's checkpoint offset is not the one the checkpoint
    /// recorded, because the topic was created again or this is another cluster. Stop, the default, fails the start.
    /// ResetToEarliest reads that partition from its oldest retained record.
    /// </summary>
    [EnumDataType(typeof(Checkpoints.TopicMismatchAction), ErrorMessage = "Learner:OnTopicMismatch must be Stop or ResetToEarliest.")]
    public Checkpoints.TopicMismatchAction OnTopicMismatch { get; set; } = Checkpoints.TopicMismatchAction.Stop;

    /// <summary>Fraction of each task routed to its holdout set by a hash of the example id.</summary>
    [Range(0.0, 0.9)]
    public double HoldoutFraction { get; set; } = 0.1;

    /// <summary>
    /// Holdout examples kept per task for evaluation, a uniform sample chosen by a hash of the example id. It bounds the
    /// learner's memory and the time of each round on an endless stream. 2,000 examples measure a task's accuracy to
    /// within about 1 percentage point (one standard error at 80% accuracy).
    /// </summary>
    [Range(100, 1_000_000)]
    public int MaxHoldoutPerTask { get; set; } = 2_000;

    /// <summary>Largest accepted record, in bytes; larger records go to the dead-letter topic.</summary>
    [Range(1024, 64 * 1024 * 1024)]
    public int MaxRecordBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// Largest accepted task number. A record of a higher task goes to the dead-letter topic, because the learner
    /// never moves back to a lower current task, so one such record would leave every later task late (warning 286).
    /// </summary>
    [Range(1, int.MaxValue, ErrorMessage = "Learner:MaxTask must be from 1 to 2147483647.")]
    public int MaxTask { get; set; } = 1_000;

    /// <summary>
    /// Largest accepted step above the current task (0 before the first task). A record of a task further above it
    /// goes to the dead-letter topic, so one wrong task number cannot skip the tasks in between.
    /// </summary>
    [Range(1, int.MaxValue, ErrorMessage = "Learner:MaxTaskJump must be from 1 to 2147483647.")]
    public int MaxTaskJump { get; set; } = 10;

    /// <summary>
    /// Largest accepted absolute value of a feature. A record with a larger feature goes to the dead-letter topic, because
    /// features near float's maximum of about 3.4e38 make the logits and the loss overflow, and the replay buffer
    /// would keep such an example. Fashion-MNIST pixels are at most 255.
    /// </summary>
    [Range(1.0, float.MaxValue, ErrorMessage = "Learner:MaxAbsFeatureValue must be from 1 to 3.4E+38 (the largest float).")]
    public float MaxAbsFeatureValue { get; set; } = 1e6f;

    /// <summary>Architecture used when the store is empty; otherwise the newest version's spec wins.</summary>
    public ModelSpec InitialSpec { get; set; } = new();

    public TrainerOptions Trainer { get; set; } = new();

    public Checkpoints.CheckpointOptions Checkpoint { get; set; } = new();

    /// <summary>Limits a candidate must meet to replace the live version.</summary>
    public PromotionOptions Promotion { get; set; } = new();

    public string ResolvedDeadLetterTopic => string.IsNullOrEmpty(DeadLetterTopic) ? Topic + ".dlq" : DeadLetterTopic;
}
