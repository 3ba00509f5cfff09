using System.Diagnostics;
using Confluent.Kafka;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Holdout;
using ContinualServe.Learner.Ingestion;

namespace ContinualServe.Learner;

/// <summary>
/// Reading ahead: the learner thread reads up to <see cref="ReadAheadRecords"/> records, and a thread-pool task
/// decodes them and routes them to holdout or training while the learner thread trains on the batch before.
/// Records are handled in the order they were read, and <c>positions</c> moves only when a record is handled,
/// so offsets, checkpoints and commits never include a record that was read but not handled.
/// A rebalance, a rollback or a seek after retention moves every assigned partition back to a handled
/// position or to the checkpoint, so records read before it are dropped and read again.
/// </summary>
public sealed partial class ContinualLearner
{
    private const int ReadAheadRecords = 64;

    // Incremented whenever the consumer's positions move back; a batch read under an older value is dropped.
    private long readGeneration;

    /// <summary>
    /// Reads the records available now, up to <see cref="ReadAheadRecords"/>, waiting up to
    /// <paramref name="timeout"/> for the first. Returns an empty list at the end of the partitions.
    /// </summary>
    private List<ConsumeResult<byte[]?, byte[]?>> ReadAvailable(IConsumer<byte[]?, byte[]?> consumer, TimeSpan timeout)
    {
        var read = new List<ConsumeResult<byte[]?, byte[]?>>(ReadAheadRecords);
        long generation = readGeneration;
        while (read.Count < ReadAheadRecords)
        {
            ConsumeResult<byte[]?, byte[]?>? result;
            try
            {
                result = consumer.Consume(read.Count == 0 ? timeout : TimeSpan.Zero);
            }
            catch (ConsumeException exception) when (exception.Error.Code == ErrorCode.Local_AutoOffsetReset)
            {
                SkipToRetainedRecords(consumer);
                read.Clear();
                break;
            }
            catch (ConsumeException exception) when (!exception.Error.IsFatal)
            {
                LogConsumeError(logger, exception, exception.Error.Code);
                break;
            }

            if (readGeneration != generation)
            {
                // A rebalance ran inside Consume: the partitions restart at handled positions.
                read.Clear();
                generation = readGeneration;
            }

            if (result is null || result.IsPartitionEOF)
            {
                break;
            }

            // Partitions assigned inside this Consume call are not paused yet. A paused learner therefore puts the
            // record back and pauses the assignment before it reads more, also on a start with the pause marker set.
            if (IsPaused)
            {
                SeekOrReassign(consumer, result.TopicPartitionOffset);
                consumer.Pause(consumer.Assignment);
                pauseApplied = true;
                break;
            }

            read.Add(result);
        }

        polledAt = Stopwatch.GetTimestamp();
        return read;
    }

    private Task<ReadBatch> DecodeAsync(List<ConsumeResult<byte[]?, byte[]?>> read)
    {
        long generation = readGeneration;
        ExampleRecordCodec decoder = codec!;
        return Task.Run(() =>
        {
            var records = new DecodedRecord[read.Count];
            for (int index = 0; index < read.Count; index++)
            {
                ConsumeResult<byte[]?, byte[]?> result = read[index];
                bool decoded = decoder.TryDecode(result.Message.Value ?? [], out LabeledExample? example, out string error);
                ExampleIdHash idHash = decoded ? ExampleIdHash.Of(example!.Id) : default;
                bool holdout = decoded && holdoutRouter.IsHoldout(idHash);
                records[index] = new DecodedRecord(result, decoded ? example : null, error, holdout, idHash);
            }

            return new ReadBatch(generation, records);
        });
    }

    /// <summary>A record with its decoded example, or the reason it is invalid, and its holdout routing and id hash.</summary>
    private sealed record DecodedRecord(ConsumeResult<byte[]?, byte[]?> Result, LabeledExample? Example, string Error, bool IsHoldout, ExampleIdHash IdHash);

    /// <summary>Records decoded together, with the <see cref="readGeneration"/> they were read under.</summary>
    private sealed record ReadBatch(long Generation, DecodedRecord[] Records);
}
