using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner;

/// <summary>
/// Consumer lag: the records in each assigned partition after the learner's position. Each round measures it
/// from librdkafka's cached watermarks. Between rounds, and while learning is paused, nothing fetches and those
/// watermarks go stale, so the learner also queries the partition leaders every <see cref="LagRefreshInterval"/>,
/// and every <see cref="UnknownLagRetryInterval"/> while the lag is unknown. The lag is unknown (null in
/// <see cref="LearnerStatus.ConsumerLag"/>, no gauge series) from the start and from each revocation until every
/// partition of the group's next assignment has been measured, and the learner is not ready meanwhile. An assignment
/// without partitions has a known lag of 0.
/// </summary>
public sealed partial class ContinualLearner
{
    private static readonly TimeSpan LagRefreshInterval = TimeSpan.FromSeconds(5);

    // The learner is not ready while its lag is unknown, so a query that failed (a slow partition leader) or that found
    // no high watermark is repeated sooner than a refresh of a known lag.
    private static readonly TimeSpan UnknownLagRetryInterval = TimeSpan.FromSeconds(1);

    // The last measured lag of each assigned partition. Only the learner thread reads and writes it.
    private readonly Dictionary<TopicPartition, long> partitionLags = [];

    private long lagMeasuredAt;

    // Failed watermark queries repeat every second while a partition leader is slow, so warning 234 is sampled.
    private readonly RepeatedLogSampler lagQueryFailures = new();

    /// <summary>
    /// Test seam that runs on the learner thread before each watermark query of a lag measurement. A
    /// <see cref="KafkaException"/> that it throws fails the measurement as a failed query does. Null outside tests.
    /// </summary>
    internal Action<TopicPartition>? BeforeWatermarkQuery { get; set; }

    /// <summary>Queries the high watermarks when a measurement is due. Skipped while the brokers are down, because each query would wait for its timeout.</summary>
    private void RefreshConsumerLag(IConsumer<byte[]?, byte[]?> consumer)
    {
        TimeSpan interval = IsLagKnown(assignedPartitions) ? LagRefreshInterval : UnknownLagRetryInterval;
        if (!BrokerAvailable || Stopwatch.GetElapsedTime(lagMeasuredAt) < interval)
        {
            return;
        }

        lagMeasuredAt = Stopwatch.GetTimestamp();
        var measured = new List<(TopicPartition, WatermarkOffsets)>();
        foreach (TopicPartition partition in consumer.Assignment)
        {
            try
            {
                BeforeWatermarkQuery?.Invoke(partition);
                measured.Add((partition, consumer.QueryWatermarkOffsets(partition, LagQueryTimeout)));
            }
            catch (KafkaException exception)
            {
                // The partitions measured before the failure keep their lag. The rest wait for the next measurement,
                // because each further query could wait for its timeout on the learner thread as well.
                if (lagQueryFailures.Count(out long failures))
                {
                    LogLagQueryFailed(logger, exception, partition, failures);
                }

                break;
            }
        }

        ReportConsumerLag(consumer, measured);
    }

    /// <summary>
    /// Sets the lag gauge of each measured partition, and the total in <see cref="Status"/> once every assigned partition
    /// has a measurement.
    /// </summary>
    private void ReportConsumerLag(IConsumer<byte[]?, byte[]?> consumer, IEnumerable<(TopicPartition Partition, WatermarkOffsets Watermarks)> measured)
    {
        lagMeasuredAt = Stopwatch.GetTimestamp();
        foreach ((TopicPartition partition, WatermarkOffsets watermarks) in measured)
        {
            // librdkafka returns an unset high watermark for a partition that it has not fetched from or queried yet.
            if (watermarks.High.Value < 0)
            {
                continue;
            }

            long lag = Math.Max(0, watermarks.High.Value - NextOffset(consumer, partition, watermarks));
            ContinualServeMetrics.KafkaConsumerLag.WithLabels(PartitionLabel(partition)).Set(lag);
            partitionLags[partition] = lag;
        }

        ReportLagStatus();
    }

    /// <summary>
    /// Starts a new assignment's lag as unknown and makes the next <see cref="RefreshConsumerLag"/> measure it at once.
    /// Runs in the partitions-assigned handler.
    /// </summary>
    private void OnLagPartitionsAssigned()
    {
        partitionLags.Clear();
        lagMeasuredAt = 0;
        ReportLagStatus();
    }

    /// <summary>Forgets the revoked partitions' lag and removes their gauge series. Runs in the partitions-revoked handler.</summary>
    private void OnLagPartitionsRevoked(IEnumerable<TopicPartition> revoked)
    {
        foreach (TopicPartition partition in revoked)
        {
            ContinualServeMetrics.KafkaConsumerLag.RemoveLabelled(PartitionLabel(partition));
        }

        partitionLags.Clear();
        ReportLagStatus();
    }

    // Sums the lag over the assignment, or leaves it null while there is none or a partition has not been measured yet,
    // and updates the readiness that depends on it.
    private void ReportLagStatus()
    {
        TopicPartition[]? assigned = assignedPartitions;
        long? total = null;
        if (IsLagKnown(assigned))
        {
            total = assigned.Sum(partition => partitionLags[partition]);
        }

        lock (statusLock)
        {
            status = status with { ConsumerLag = total, AssignedPartitions = assigned?.Length };
        }

        ReportReadiness();
    }

    // True once the group has assigned partitions, or none, and each assigned one has a measured lag.
    private bool IsLagKnown([NotNullWhen(true)] TopicPartition[]? assigned) =>
        assigned is not null && assigned.All(partitionLags.ContainsKey);

    private static string PartitionLabel(TopicPartition partition) => partition.Partition.Value.ToString(CultureInfo.InvariantCulture);

    // The next record the learner will handle: its handled position, else where the consumer will fetch from
    // (a checkpoint's offset after a restart), else the oldest retained record.
    private long NextOffset(IConsumer<byte[]?, byte[]?> consumer, TopicPartition partition, WatermarkOffsets watermarks)
    {
        if (positions.TryGetValue(partition, out long handled))
        {
            return handled;
        }

        Offset fetching = consumer.Position(partition);
        return fetching.Value >= 0 ? fetching.Value : CheckpointOffset(partition) ?? watermarks.Low.Value;
    }

    [LoggerMessage(EventId = 234, Level = LogLevel.Warning, Message = "Querying the watermarks of {Partition} for the consumer lag failed ({Failures} failures so far; the first 10 and every 100th are logged). The partition keeps its last measured lag; while it has none, the learner is not ready and queries again every second")]
    private static partial void LogLagQueryFailed(ILogger logger, KafkaException exception, TopicPartition partition, long failures);
}
