using System.Diagnostics;
using Confluent.Kafka;
using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Kafka;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner;

/// <summary>
/// The check at start that each partition is the one the checkpoint read. A topic that was deleted and created again,
/// or the same topic on another cluster, can already contain more records than the checkpoint's offset N, and resuming
/// at N would skip its records before N unread. So the learner reads the record at N - 1 and compares its key and
/// timestamp with the identity that the checkpoint recorded.
/// </summary>
public sealed partial class ContinualLearner
{
    private const int TopicCheckAttempts = 3;
    private static readonly TimeSpan TopicCheckAttemptTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan TopicCheckRetryDelay = TimeSpan.FromSeconds(1);

    // The last record handled on each partition. A checkpoint at the offset after it records its identity.
    private readonly Dictionary<TopicPartition, HandledRecord> lastHandled = [];

    // Partitions that Learner:OnTopicMismatch=ResetToEarliest moved: the checkpoint's offset that belongs to another
    // topic, and the oldest retained offset the learner reads from instead.
    private readonly Dictionary<(string Topic, int Partition), (long CheckpointOffset, long Start)> topicResets = [];

    /// <summary>
    /// Time that the check at start may spend on all partitions together. A partition not checked by then resumes at
    /// the checkpoint's offset with warning 289. Tests lower it.
    /// </summary>
    internal TimeSpan TopicCheckTimeout { get; set; } = TimeSpan.FromSeconds(15);

    private void RememberHandledRecord(ConsumeResult<byte[]?, byte[]?> result) =>
        lastHandled[result.TopicPartition] = new HandledRecord(result.Offset.Value, result.Message.Key, result.Message.Timestamp);

    /// <summary>
    /// Returns the identity of the record before each of <paramref name="offsets"/>: the record this process handled
    /// last when it is the one before the offset, else the identity that the current checkpoint recorded for the same
    /// offset. An offset reached by a seek, such as past records that retention deleted, gets none.
    /// </summary>
    private List<RecordIdentity> LastRecordsBefore(IReadOnlyList<TrainingOffset> offsets)
    {
        List<RecordIdentity> identities = [];
        foreach (TrainingOffset offset in offsets)
        {
            var partition = new TopicPartition(offset.Topic, offset.Partition);
            if (lastHandled.TryGetValue(partition, out HandledRecord handled) && handled.Offset == offset.Offset - 1)
            {
                identities.Add(RecordIdentity.Of(partition, handled.Offset, handled.Key, handled.Timestamp));
            }
            else if (RecordedIdentity(checkpoint, offset) is { } kept)
            {
                identities.Add(kept);
            }
        }

        return identities;
    }

    private static RecordIdentity? RecordedIdentity(LearnerCheckpoint? saved, TrainingOffset offset) =>
        saved?.LastRecords?.FirstOrDefault(identity =>
            identity.Topic == offset.Topic && identity.Partition == offset.Partition && identity.Offset == offset.Offset - 1);

    /// <summary>
    /// Checks every partition of <see cref="LearnerOptions.Topic"/> that the checkpoint resumes at an offset above 0.
    /// A partition past its end is left to the consume loop, which logs error 225 and reads it from its oldest record.
    /// </summary>
    /// <exception cref="IncompatibleStateException">
    /// A partition has another record before the checkpoint's offset, and Learner:OnTopicMismatch is Stop.
    /// </exception>
    private void VerifyCheckpointTopic()
    {
        LearnerCheckpoint? saved = checkpoint;
        TrainingOffset[] resumed = (saved?.Offsets ?? [])
            .Where(offset => offset.Topic == options.Topic && offset.Offset > 0)
            .ToArray();
        if (saved is null || resumed.Length == 0)
        {
            return;
        }

        List<(TrainingOffset Offset, RecordIdentity Expected)> checkable = [];
        foreach (TrainingOffset offset in resumed)
        {
            if (RecordedIdentity(saved, offset) is { } expected)
            {
                checkable.Add((offset, expected));
                continue;
            }

            string reason = saved.LastRecords is null
                ? "the checkpoint was written before learner checkpoints recorded the record before each offset"
                : "the checkpoint records no record before that offset, because the learner reached it by a seek (a version manifest's offset, or the oldest record after retention deleted older ones)";
            var partition = new TopicPartition(offset.Topic, offset.Partition);
            LogTopicNotChecked(logger, LogLevel.Information, partition, saved.Sequence, reason, offset.Offset);
        }

        if (checkable.Count == 0)
        {
            return;
        }

        List<TopicMismatch> mismatches = [];
        long started = Stopwatch.GetTimestamp();
        using (IConsumer<byte[]?, byte[]?> reader = BuildTopicCheckConsumer())
        {
            foreach ((TrainingOffset offset, RecordIdentity expected) in checkable)
            {
                var partition = new TopicPartition(offset.Topic, offset.Partition);
                TimeSpan remaining = TopicCheckTimeout - Stopwatch.GetElapsedTime(started);
                if (CheckPartition(reader, partition, expected, offset.Offset, remaining, saved.Sequence) is { } mismatch)
                {
                    mismatches.Add(mismatch);
                }
            }

            try
            {
                reader.Close();
            }
            catch (KafkaException exception) when (!exception.Error.IsFatal)
            {
                // The reader joined no group and committed nothing, so a failed close loses nothing.
                LogConsumeError(logger, exception, exception.Error.Code);
            }
        }

        if (mismatches.Count == 0)
        {
            return;
        }

        if (options.OnTopicMismatch == TopicMismatchAction.Stop)
        {
            throw TopicMismatchError(saved, mismatches);
        }

        foreach (TopicMismatch mismatch in mismatches)
        {
            topicResets[(mismatch.Partition.Topic, mismatch.Partition.Partition.Value)] = (mismatch.CheckpointOffset, mismatch.Oldest);
            LogTopicMismatchReset(
                logger, mismatch.Partition, saved.Sequence, mismatch.Expected.Describe(), mismatch.Found.Describe(), mismatch.Oldest, mismatch.CheckpointOffset);
        }

        checkpoint = WithTopicResets(saved);
    }

    /// <summary>
    /// Reads the record at <paramref name="expected"/>'s offset and returns the mismatch when it is another record, or
    /// null when it is the same, when it cannot be compared, or when the partition ends before <paramref name="offset"/>.
    /// A broker error or a timeout is retried up to <see cref="TopicCheckAttempts"/> times within
    /// <paramref name="timeout"/>, and then the partition resumes unchecked with a warning. The start does not fail then,
    /// because the check guards against a rare operator error, and a start that failed on a flaky broker would be
    /// restarted into the same failure.
    /// </summary>
    private TopicMismatch? CheckPartition(
        IConsumer<byte[]?, byte[]?> reader, TopicPartition partition, RecordIdentity expected, long offset, TimeSpan timeout, long sequence)
    {
        long started = Stopwatch.GetTimestamp();
        string failure = "";
        int attempts = 0;
        while (attempts < TopicCheckAttempts)
        {
            TimeSpan remaining = timeout - Stopwatch.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                break;
            }

            attempts++;
            try
            {
                return ReadRecordBefore(reader, partition, expected, offset, remaining < TopicCheckAttemptTimeout ? remaining : TopicCheckAttemptTimeout, sequence);
            }
            catch (KafkaException exception) when (!exception.Error.IsFatal)
            {
                failure = exception.Message;
                LogConsumeError(logger, exception, exception.Error.Code);
            }

            TimeSpan left = timeout - Stopwatch.GetElapsedTime(started);
            if (attempts < TopicCheckAttempts && left > TopicCheckRetryDelay)
            {
                Thread.Sleep(TopicCheckRetryDelay);
            }
        }

        string reason = attempts == 0
            ? $"the check of all partitions ran out of its {TopicCheckTimeout.TotalSeconds:F0} s before this partition"
            : $"reading the record at offset {expected.Offset} failed (attempts: {attempts}, last error: {failure})";
        LogTopicNotChecked(logger, LogLevel.Warning, partition, sequence, reason, offset);
        return null;
    }

    /// <exception cref="KafkaException">The broker did not respond in time, or returned an error.</exception>
    private TopicMismatch? ReadRecordBefore(
        IConsumer<byte[]?, byte[]?> reader, TopicPartition partition, RecordIdentity expected, long offset, TimeSpan timeout, long sequence)
    {
        WatermarkOffsets watermarks = reader.QueryWatermarkOffsets(partition, timeout);
        if (watermarks.High.Value < offset)
        {
            // The consume loop logs error 225 for this partition and reads it from its oldest record.
            return null;
        }

        if (watermarks.Low.Value > expected.Offset)
        {
            string deleted = $"retention deleted the record at offset {expected.Offset} (the oldest retained record is at offset {watermarks.Low.Value})";
            LogTopicNotChecked(logger, LogLevel.Information, partition, sequence, deleted, offset);
            return null;
        }

        reader.Assign(new TopicPartitionOffset(partition, expected.Offset));
        ConsumeResult<byte[]?, byte[]?>? result;
        try
        {
            result = reader.Consume(timeout);
        }
        catch (ConsumeException exception) when (exception.Error.Code is ErrorCode.OffsetOutOfRange or ErrorCode.Local_AutoOffsetReset)
        {
            string deleted = $"retention deleted the record at offset {expected.Offset} during the check";
            LogTopicNotChecked(logger, LogLevel.Information, partition, sequence, deleted, offset);
            return null;
        }

        if (result is null)
        {
            throw new KafkaException(new Error(ErrorCode.Local_TimedOut, $"no record arrived within {timeout.TotalSeconds:F1} s"));
        }

        if (result.IsPartitionEOF || result.Offset.Value != expected.Offset)
        {
            string next = result.IsPartitionEOF ? "none follows it" : $"the next one is at offset {result.Offset.Value}";
            string removed = $"the partition has no record at offset {expected.Offset} any more ({next}), as after log compaction or an aborted transaction";
            LogTopicNotChecked(logger, LogLevel.Information, partition, sequence, removed, offset);
            return null;
        }

        RecordIdentity found = RecordIdentity.Of(partition, result.Offset.Value, result.Message.Key, result.Message.Timestamp);
        if (found.Matches(expected))
        {
            return null;
        }

        var mismatch = new TopicMismatch(partition, offset, expected, found, watermarks.Low.Value);
        if (options.OnTopicMismatch == TopicMismatchAction.Stop)
        {
            LogTopicMismatch(logger, partition, sequence, offset, expected.Describe(), found.Describe(), options.BootstrapServers);
        }

        return mismatch;
    }

    /// <summary>Builds a consumer for assigned partitions only, which joins no group and commits nothing.</summary>
    private IConsumer<byte[]?, byte[]?> BuildTopicCheckConsumer()
    {
        // The Confluent.Kafka consumer's constructor requires a group id, but a consumer that never subscribes or commits does not use it.
        ConsumerConfig config = RecordReaderConfig();
        config.ReconnectBackoffMaxMs = 1000;
        config = kafkaProperties.ApplyTo(config);
        return new ConsumerBuilder<byte[]?, byte[]?>(config)
            .SetLogHandler(new KafkaClientLog(logger).OnLog)
            .Build();
    }

    /// <summary>
    /// Returns <paramref name="saved"/> with the offsets of the partitions that Learner:OnTopicMismatch=ResetToEarliest
    /// moved, so that a rollback to the checkpoint read at start does not go back to the other topic's offsets.
    /// A checkpoint written after the reset records offsets of the new topic and is returned unchanged.
    /// </summary>
    private LearnerCheckpoint WithTopicResets(LearnerCheckpoint saved)
    {
        if (topicResets.Count == 0)
        {
            return saved;
        }

        bool IsReset(string topic, int partition, long offset) =>
            topicResets.TryGetValue((topic, partition), out (long CheckpointOffset, long Start) reset) && reset.CheckpointOffset == offset;

        TrainingOffset[] offsets = saved.Offsets
            .Select(offset => IsReset(offset.Topic, offset.Partition, offset.Offset)
                ? offset with { Offset = topicResets[(offset.Topic, offset.Partition)].Start }
                : offset)
            .ToArray();
        RecordIdentity[]? lastRecords = saved.LastRecords?
            .Where(identity => !IsReset(identity.Topic, identity.Partition, identity.Offset + 1))
            .ToArray();
        return saved with { Offsets = offsets, LastRecords = lastRecords };
    }

    private static IncompatibleStateException TopicMismatchError(LearnerCheckpoint saved, List<TopicMismatch> mismatches)
    {
        string partitions = string.Join("; ", mismatches.Select(mismatch =>
            $"{mismatch.Partition} resumes at offset {mismatch.CheckpointOffset} after the record with {mismatch.Expected.Describe()}, but has the record with {mismatch.Found.Describe()} there"));
        return new IncompatibleStateException(
            $"The examples topic is not the one that learner checkpoint {saved.Sequence} read: {partitions}. "
            + "The topic was deleted and created again, or the learner now reads another cluster, and resuming at the checkpoint's offsets "
            + "would skip the records before them unread. Point Learner:BootstrapServers (--bootstrap-servers) and Learner:Topic at the "
            + "topic the checkpoint read, or set Learner:OnTopicMismatch=ResetToEarliest to read these partitions from their oldest record.");
    }

    /// <summary>Offset, key and timestamp of a record the learner handled, kept until a checkpoint needs its identity.</summary>
    private readonly record struct HandledRecord(long Offset, byte[]? Key, Timestamp Timestamp);

    /// <summary>A partition whose record before the checkpoint's offset is not the one the checkpoint recorded.</summary>
    private sealed record TopicMismatch(TopicPartition Partition, long CheckpointOffset, RecordIdentity Expected, RecordIdentity Found, long Oldest);

    [LoggerMessage(EventId = 287, Level = LogLevel.Error, Message = "{Partition} is not the topic that learner checkpoint {Sequence} read: the checkpoint resumes at offset {Offset} after the record with {Expected}, but the partition has the record with {Found} there. The topic was deleted and created again, or {BootstrapServers} is another cluster, and resuming would skip the records before offset {Offset} unread, so the learner does not start. Point Learner:BootstrapServers and Learner:Topic at the topic the checkpoint read, or set Learner:OnTopicMismatch=ResetToEarliest to read this partition from its oldest record")]
    private static partial void LogTopicMismatch(ILogger logger, TopicPartition partition, long sequence, long offset, string expected, string found, string bootstrapServers);

    [LoggerMessage(EventId = 288, Level = LogLevel.Warning, Message = "{Partition} is not the topic that learner checkpoint {Sequence} read: it expected the record with {Expected} and found the record with {Found}. Learner:OnTopicMismatch is ResetToEarliest, so the learner reads the partition from its oldest record, offset {Oldest}, instead of offset {Offset}, and trains its examples on top of the checkpoint's model")]
    private static partial void LogTopicMismatchReset(ILogger logger, TopicPartition partition, long sequence, string expected, string found, long oldest, long offset);

    [LoggerMessage(EventId = 289, Message = "Did not check that {Partition} is the topic that learner checkpoint {Sequence} read, because {Reason}. Reading resumes at the checkpoint's offset {Offset}")]
    private static partial void LogTopicNotChecked(ILogger logger, LogLevel level, TopicPartition partition, long sequence, string reason, long offset);
}
