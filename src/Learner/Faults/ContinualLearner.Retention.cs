using Confluent.Kafka;
using ContinualServe.Model.Telemetry;

namespace ContinualServe.Learner;

/// <summary>Offsets that retention deleted before the learner read them: counted as lost, never skipped silently.</summary>
public sealed partial class ContinualLearner
{
    /// <summary>
    /// Moves a starting offset below the partition's oldest retained record up to that record and reports the
    /// records in between as lost, so that a learner restarted after retention overtook it starts cleanly.
    /// </summary>
    private TopicPartitionOffset ClampToRetained(IConsumer<byte[]?, byte[]?> consumer, TopicPartitionOffset start)
    {
        if (start.Offset.IsSpecial)
        {
            return start;
        }

        WatermarkOffsets watermarks;
        try
        {
            watermarks = consumer.QueryWatermarkOffsets(start.TopicPartition, TimeSpan.FromSeconds(5));
        }
        catch (KafkaException exception) when (!exception.Error.IsFatal)
        {
            // Unknown now; if the offset is out of range the consume loop reports it instead.
            LogConsumeError(logger, exception, exception.Error.Code);
            return start;
        }

        if (start.Offset.Value >= watermarks.Low.Value)
        {
            return start;
        }

        long lost = watermarks.Low.Value - start.Offset.Value;
        ContinualServeMetrics.LearnerExamples.WithLabels("lost").Inc(lost);
        lock (statusLock)
        {
            status = status with { Lost = status.Lost + lost };
        }

        LogRecordsLost(logger, start.TopicPartition, start.Offset.Value, watermarks.Low.Value, lost);
        positions[start.TopicPartition] = watermarks.Low.Value;
        return new TopicPartitionOffset(start.TopicPartition, watermarks.Low);
    }

    /// <summary>
    /// Seeks a partition. librdkafka rejects a seek (Local_State) while an out-of-range error has stopped the
    /// partition's fetcher, so the assignment is then set again with the new offset.
    /// </summary>
    private void SeekOrReassign(IConsumer<byte[]?, byte[]?> consumer, TopicPartitionOffset target)
    {
        try
        {
            consumer.Seek(target);
        }
        catch (KafkaException exception) when (exception.Error.Code == ErrorCode.Local_State)
        {
            // NOTE: only exercised by a running learner overtaken by retention; the restart case is handled by ClampToRetained.
            consumer.Assign(consumer.Assignment.Select(partition => partition == target.TopicPartition
                ? target
                : new TopicPartitionOffset(partition, positions.TryGetValue(partition, out long position) ? position : Offset.Stored)));
        }
    }
}
