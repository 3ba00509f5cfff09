using Confluent.Kafka;

namespace ContinualServe.Learner.Kafka;

/// <summary>
/// Client configurations tuned for low latency against <see cref="EmbeddedKafkaBroker"/>.
/// </summary>
public static class KafkaDefaults
{
    /// <summary>Creates an idempotent producer configuration that waits for all in-sync replicas and lingers 1 ms.</summary>
    public static ProducerConfig CreateProducerConfig(string bootstrapServers)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(bootstrapServers);
        return new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            Acks = Acks.All,
            EnableIdempotence = true,
            LingerMs = 1,
            MessageTimeoutMs = 10_000,
            SocketTimeoutMs = 10_000,
        };
    }

    /// <summary>
    /// Creates a consumer configuration for at-least-once processing: the caller stores each
    /// processed offset with StoreOffset and commits explicitly, and a new group starts from the earliest record.
    /// </summary>
    public static ConsumerConfig CreateConsumerConfig(string bootstrapServers, string groupId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(bootstrapServers);
        ArgumentException.ThrowIfNullOrWhiteSpace(groupId);
        return new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = groupId,
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            FetchWaitMaxMs = 5,
            // The librdkafka mock coordinator (rdkafka_mock_cgrp.c) waits session.timeout.ms - 1000 ms for
            // members to rejoin on each classic-protocol rebalance. With librdkafka 2.16.0 a 10 s session
            // made each rebalance take about 9 s, and this 3 s session makes it about 2 s.
            SessionTimeoutMs = 3_000,
            HeartbeatIntervalMs = 500,
            MaxPollIntervalMs = 60_000,
            SocketTimeoutMs = 10_000,
            TopicMetadataRefreshIntervalMs = 1_000,
        };
    }
}
