using System.Diagnostics;
using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ContinualServe.Learner.Ingestion;

/// <summary>
/// Reads a consumer group's committed offsets on a topic without joining the group, for pacing a producer to
/// a consumer in another process. The sum over partitions is refreshed at most every <see cref="RefreshInterval"/>.
/// </summary>
public sealed class CommittedOffsetTracker : IDisposable
{
    private readonly IConsumer<Ignore, Ignore> consumer;
    private readonly string topic;
    private readonly Stopwatch sinceRefresh = new();
    private List<TopicPartition>? partitions;
    private long committed;

    public CommittedOffsetTracker(string bootstrapServers, string groupId, string topic, ILogger? logger = null, KafkaClientProperties? kafkaProperties = null)
    {
        this.topic = topic;
        ConsumerConfig config = (kafkaProperties ?? KafkaClientProperties.None).ApplyTo(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = groupId,
            EnableAutoCommit = false,
        });
        var clientLog = new KafkaClientLog(logger ?? NullLogger.Instance);
        consumer = new ConsumerBuilder<Ignore, Ignore>(config)
            .SetLogHandler(clientLog.OnLog)
            .SetErrorHandler(clientLog.OnError)
            .Build();
    }

    public TimeSpan RefreshInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Returns the sum over the topic's partitions of the group's committed offsets (0 where none is committed).</summary>
    public long CommittedTotal()
    {
        if (sinceRefresh.IsRunning && sinceRefresh.Elapsed < RefreshInterval)
        {
            return committed;
        }

        sinceRefresh.Restart();
        partitions ??= LoadPartitions();
        if (partitions.Count == 0)
        {
            partitions = null;
            return committed;
        }

        committed = consumer.Committed(partitions, TimeSpan.FromSeconds(5))
            .Sum(offset => offset.Offset.Value >= 0 ? offset.Offset.Value : 0);
        return committed;
    }

    public void Dispose() => consumer.Dispose();

    private List<TopicPartition> LoadPartitions()
    {
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
        Metadata metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds(5));
        return metadata.Topics
            .Where(entry => entry.Topic == topic && !entry.Error.IsError)
            .SelectMany(entry => entry.Partitions.Select(partition => new TopicPartition(topic, partition.PartitionId)))
            .ToList();
    }
}
