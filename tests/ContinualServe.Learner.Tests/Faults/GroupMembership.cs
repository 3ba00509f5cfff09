using System.Globalization;
using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using Shouldly;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// Setup and checks shared by the tests of work that outlasts max.poll.interval.ms: a short interval for the learner's
/// consumer, and the evidence that the learner stayed in its consumer group through the work.
/// </summary>
internal static class GroupMembership
{
    private const int AssignedEventId = 271;
    private const int RevokedEventId = 272;
    private const int ConsumeErrorEventId = 208;
    private const int CommitFailedEventId = 245;

    /// <summary>
    /// The learner's max.poll.interval.ms in these tests. librdkafka requires it to be at least session.timeout.ms, which
    /// the harness sets to 3 s.
    /// </summary>
    public static readonly TimeSpan MaxPollInterval = TimeSpan.FromSeconds(3);

    /// <summary>Returns Kafka client properties that set max.poll.interval.ms to <see cref="MaxPollInterval"/>.</summary>
    public static KafkaClientProperties ShortMaxPollInterval() =>
        KafkaClientProperties.Load(null, [new("max.poll.interval.ms", ((int)MaxPollInterval.TotalMilliseconds).ToString(CultureInfo.InvariantCulture))]);

    /// <summary>Checks that the learner was assigned its partitions once, never lost them and logged no consume error.</summary>
    public static void AssertNeverLeftGroup(ContinualLearner learner, RecordingLoggerFactory loggers)
    {
        IReadOnlyList<LogRecord> records = loggers.Logger.Records;
        records.Count(record => record.EventId == AssignedEventId).ShouldBe(1, "the partitions were assigned again");
        records.ShouldNotContain(record => record.EventId == RevokedEventId);
        records.ShouldNotContain(record => record.EventId == ConsumeErrorEventId);
        learner.Failure.ShouldBeNull();
    }

    /// <summary>
    /// Checks <see cref="AssertNeverLeftGroup"/>, and that the learner read each of <paramref name="records"/> records of
    /// partition 0 once and committed the offset after them.
    /// </summary>
    public static void AssertStayedInGroup(
        EmbeddedKafkaBroker broker, string topic, string groupId, ContinualLearner learner, RecordingLoggerFactory loggers, long records)
    {
        AssertNeverLeftGroup(learner, loggers);
        loggers.Logger.Records.ShouldNotContain(record => record.EventId == CommitFailedEventId);
        learner.Status.Consumed.ShouldBe(records, "a record was read twice");
        CommittedOffset(broker.BootstrapServers, topic, groupId).ShouldBe(records);
    }

    /// <summary>Reads the group's committed offset of partition 0 without joining the group.</summary>
    public static long CommittedOffset(string bootstrapServers, string topic, string groupId)
    {
        using IConsumer<Ignore, Ignore> reader = new ConsumerBuilder<Ignore, Ignore>(KafkaDefaults.CreateConsumerConfig(bootstrapServers, groupId)).Build();
        List<TopicPartitionOffset> committed = reader.Committed([new TopicPartition(topic, new Partition(0))], TimeSpan.FromSeconds(10));
        return committed.Single().Offset.Value;
    }
}
