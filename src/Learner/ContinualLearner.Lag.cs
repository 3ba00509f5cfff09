using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using ContinualServe.Model.Telemetry;

namespace ContinualServe.Learner;

/// <summary>
/// Consumer lag: the records in each assigned partition after the learner's position. Each round measures it
/// from librdkafka's cached watermarks. Between rounds, and while learning is paused, nothing fetches and those
/// watermarks go stale, so the learner also queries the partition leaders every <see cref="LagRefreshInterval"/>.
/// </summary>
public sealed partial class ContinualLearner
{
    private static readonly TimeSpan LagRefreshInterval = TimeSpan.FromSeconds(5);

    private long lagMeasuredAt;

    /// <summary>Queries the high watermarks when a measurement is due. Skipped while the brokers are down, because each query would wait for its timeout.</summary>
    private void RefreshConsumerLag(IConsumer<byte[]?, byte[]?> consumer)
    {
        if (!BrokerAvailable || Stopwatch.GetElapsedTime(lagMeasuredAt) < LagRefreshInterval)
        {
            return;
        }

        lagMeasuredAt = Stopwatch.GetTimestamp();
        var measured = new List<(TopicPartition, WatermarkOffsets)>();
        foreach (TopicPartition partition in consumer.Assignment)
        {
            try
            {
                measured.Add((partition, consumer.QueryWatermarkOffsets(partition, LagQueryTimeout)));
            }
            catch (KafkaException)
            {
                return;
            }
        }

        ReportConsumerLag(consumer, measured);
    }

    /// <summary>Sets the lag gauge of each measured partition and the total in <see cref="Status"/>.</summary>
    private void ReportConsumerLag(IConsumer<byte[]?, byte[]?> consumer, IEnumerable<(TopicPartition Partition, WatermarkOffsets Watermarks)> measured)
    {
        lagMeasuredAt = Stopwatch.GetTimestamp();
        long total = 0;
        foreach ((TopicPartition partition, WatermarkOffsets watermarks) in measured)
        {
            if (watermarks.High.Value < 0)
            {
                continue;
            }

            long lag = Math.Max(0, watermarks.High.Value - NextOffset(consumer, partition, watermarks));
            ContinualServeMetrics.KafkaConsumerLag.WithLabels(partition.Partition.Value.ToString(CultureInfo.InvariantCulture)).Set(lag);
            total += lag;
        }

        lock (statusLock)
        {
            status = status with { ConsumerLag = total };
        }
    }

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
}
