using System.Diagnostics;
using Confluent.Kafka;
using ContinualServe.Learner.Data;

namespace ContinualServe.Learner;

/// <summary>
/// Keeping the consumer in its group while the learner thread works without reading records: while it waits for a
/// round write, while a round evaluates its candidate (holdout sets, analytic calibration, golden set), and while it
/// waits for the file work of <see cref="WaitPolling{T}"/> (the pause marker's read and write, the golden set's read,
/// the live version's reload after a rejected candidate, a rollback's checkpoint load, the pin's read and the pinned
/// version's load, and the checkpoint of a rejected round or of a pinned base). librdkafka
/// drops a consumer that does not poll for max.poll.interval.ms (librdkafka default 300 s) from its group, so during
/// such work the learner thread pauses the assigned partitions and polls at least every <see cref="PausedPollInterval"/>.
/// A poll returns no record from a paused partition, but it serves rebalances and restarts max.poll.interval.ms.
/// A rebalance served there runs the same revoke and assign handlers as a poll between records: the partitions go back
/// to their handled positions and records read ahead are dropped (<c>readGeneration</c>), so no record is handled twice
/// or skipped. The round's offsets are taken before its first such poll, and are committed only after its write.
/// </summary>
public sealed partial class ContinualLearner
{
    // How long after the last poll the next one is due during such work. It must stay well below max.poll.interval.ms.
    private static readonly TimeSpan PausedPollInterval = TimeSpan.FromMilliseconds(100);

    // Stopwatch timestamp of the learner thread's last call to Consume.
    private long polledAt;
    private bool pausedForWork;

    // The consumer that WaitPolling polls; null until the learner thread builds it, so work at start waits without polls.
    private IConsumer<byte[]?, byte[]?>? groupConsumer;

    /// <summary>
    /// Examples per forward batch in a round's evaluations, between which the consumer is polled when a poll is due.
    /// Tests lower it to split a small holdout set into many batches.
    /// </summary>
    internal int EvaluationBatchSize { get; set; } = TensorBatches.ForwardBatchSize;

    /// <summary>Returns the batching of a round's forward passes, which polls <paramref name="consumer"/> between batches when due.</summary>
    private ForwardBatching RoundBatching(IConsumer<byte[]?, byte[]?> consumer) => new(EvaluationBatchSize, () =>
    {
        PollIfDue(consumer);
        FaultHooks.BeforeEvaluationBatch?.Invoke();
    });

    /// <summary>
    /// Waits for file work that runs on a thread-pool task, and polls the consumer with its partitions paused once per
    /// <see cref="PausedPollInterval"/> until it ends, so work stalled past max.poll.interval.ms keeps the learner in
    /// its group. The partitions stay paused until the caller's <see cref="ResumeAfterWork"/>. Rethrows the work's error.
    /// The work must not use TorchSharp modules or the trainer, which stay on the learner thread, nor the positions, which
    /// a rebalance served by the polls changes.
    /// </summary>
    private T WaitPolling<T>(Task<T> work)
    {
        WaitPolling((Task)work);
        return work.GetAwaiter().GetResult();
    }

    /// <summary>Waits for file work without a result as <see cref="WaitPolling{T}"/> does.</summary>
    private void WaitPolling(Task work)
    {
        if (groupConsumer is { } consumer)
        {
            try
            {
                while (Task.WaitAny([work], PausedPollInterval) < 0)
                {
                    PausePollOnce(consumer);
                }
            }
            catch
            {
                // The caller frees the buffers that the work reads or writes as soon as this throws, so a poll that fails
                // (a fatal Kafka error) waits for the work to end first.
                Task.WaitAny([work]);
                throw;
            }
        }

        work.GetAwaiter().GetResult();
    }

    /// <summary>Pauses the assignment and polls once, when <see cref="PausedPollInterval"/> has passed since the last poll.</summary>
    private void PollIfDue(IConsumer<byte[]?, byte[]?> consumer)
    {
        if (Stopwatch.GetElapsedTime(polledAt) >= PausedPollInterval)
        {
            PausePollOnce(consumer);
        }
    }

    /// <summary>Pauses the assignment and polls once without waiting.</summary>
    private void PausePollOnce(IConsumer<byte[]?, byte[]?> consumer)
    {
        // Partitions assigned by a rebalance during the work start unpaused, so the whole assignment is paused each time.
        consumer.Pause(consumer.Assignment);
        pausedForWork = true;
        PollPaused(consumer);
    }

    /// <summary>
    /// Resumes the partitions that <see cref="PausePollOnce"/> paused, unless an operator's pause keeps them paused:
    /// ApplyPauseRequest resumes them when it is lifted.
    /// </summary>
    private void ResumeAfterWork(IConsumer<byte[]?, byte[]?> consumer)
    {
        if (!pausedForWork)
        {
            return;
        }

        pausedForWork = false;
        bool operatorPaused = IsPaused;
        if (!operatorPaused)
        {
            consumer.Resume(consumer.Assignment);
        }

        pauseApplied = operatorPaused;
    }

    /// <summary>
    /// Polls the consumer once without waiting. A record of a partition that a rebalance assigned inside this call,
    /// before it could be paused, is put back, so it is read after the work like every other record.
    /// </summary>
    private void PollPaused(IConsumer<byte[]?, byte[]?> consumer)
    {
        ConsumeResult<byte[]?, byte[]?>? result;
        FaultHooks.BeforePausedPoll?.Invoke();
        try
        {
            polledAt = Stopwatch.GetTimestamp();
            result = consumer.Consume(TimeSpan.Zero);
        }
        catch (ConsumeException exception) when (exception.Error.Code == ErrorCode.Local_AutoOffsetReset)
        {
            SkipToRetainedRecords(consumer);
            return;
        }
        catch (ConsumeException exception) when (!exception.Error.IsFatal)
        {
            LogConsumeError(logger, exception, exception.Error.Code);
            return;
        }

        if (result is null || result.IsPartitionEOF)
        {
            return;
        }

        SeekOrReassign(consumer, result.TopicPartitionOffset);
        consumer.Pause(consumer.Assignment);
    }
}
