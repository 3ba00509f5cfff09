using Confluent.Kafka;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner;

/// <summary>Offsets that retention deleted before the learner read them: counted as lost, never skipped silently.</summary>
public sealed partial class ContinualLearner
{
    private readonly HashSet<TopicPartition> partitionsStartedFresh = [];

    /// <summary>
    /// Moves a starting offset below the partition's oldest retained record up to that record and reports the
    /// records in between as lost, so that a learner restarted after retention overtook it starts cleanly.
    /// </summary>
    private TopicPartitionOffset ClampToRetained(IConsumer<byte[]?, byte[]?> consumer, TopicPartitionOffset start)
    {
        if (start.Offset == Offset.Beginning)
        {
            ReportDeletedBeforeStart(consumer, start.TopicPartition);
            return start;
        }

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
    /// Reports, once per partition, the records that retention deleted before a learner without a checkpoint or
    /// version offsets first read the partition. They are not lost by this learner, which never had them, but an
    /// operator who expected a full replay (for example after wiping the store) needs to know they are gone.
    /// </summary>
    private void ReportDeletedBeforeStart(IConsumer<byte[]?, byte[]?> consumer, TopicPartition partition)
    {
        if (!partitionsStartedFresh.Add(partition))
        {
            return;
        }

        WatermarkOffsets watermarks;
        try
        {
            watermarks = consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(5));
        }
        catch (KafkaException exception) when (!exception.Error.IsFatal)
        {
            LogConsumeError(logger, exception, exception.Error.Code);
            return;
        }

        if (watermarks.Low.Value <= 0)
        {
            return;
        }

        lock (statusLock)
        {
            status = status with { DeletedBeforeStart = status.DeletedBeforeStart + watermarks.Low.Value };
        }

        LogDeletedBeforeStart(logger, partition, watermarks.Low.Value);
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
            // A running learner overtaken by retention gets here. A restarted one starts in range through ClampToRetained.
            consumer.Assign(consumer.Assignment.Select(partition => partition == target.TopicPartition
                ? target
                : new TopicPartitionOffset(partition, positions.TryGetValue(partition, out long position) ? position : Offset.Stored)));
        }
    }

    [LoggerMessage(EventId = 214, Level = LogLevel.Warning, Message = "{Partition} starts at offset {Oldest}, its oldest retained record: the learner has no checkpoint or version offsets for it, and retention had deleted the records before. They are not counted as lost")]
    private static partial void LogDeletedBeforeStart(ILogger logger, TopicPartition partition, long oldest);
}
