using System.Diagnostics;
using Confluent.Kafka;
using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Faults;
using ContinualServe.Learner.Replay;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace ContinualServe.Learner;

/// <summary>
/// Writing a promoted round to disk off the learner thread. The round copies the weights to a second module, and the
/// optimizer state and the LwF teacher into memory. Training then goes on while a thread-pool task writes them and the
/// rest of the checkpoint to a temporary directory, saves the version, then flushes the checkpoint and renames it into
/// place. Once
/// the task is done, the learner thread commits the round's offsets, so an offset is still committed only after its
/// examples are durable. At most one round is written at a time: the next round, a rollback and a stop wait for it
/// first. While they wait, the learner thread polls Kafka with the partitions paused, so that it stays in its consumer
/// group.
/// </summary>
public sealed partial class ContinualLearner
{
    private nn.Module<Tensor, Tensor>? publishedWeights;
    private Task<(ModelVersion Version, LearnerCheckpoint Checkpoint)>? publishing;
    private PromotedRound? publishingRound;
    private FileAccessWatchdog? roundWriteWatchdog;

    /// <summary>
    /// Optimizer state up to this size is copied into memory for the round-write task. Larger state (the analytic sums
    /// of a hidden layer wider than about 5,600 units) is written by the learner thread, because a copy would double it.
    /// Tests lower it.
    /// </summary>
    // NOTE: the learner thread does not poll while it writes optimizer state above this size, so a volume that stalls
    // that write past max.poll.interval.ms drops the learner from its group.
    internal long MaxCopiedOptimizerBytes { get; set; } = 256L << 20;

    private FileAccessWatchdog RoundWriteWatchdog => roundWriteWatchdog ??= new FileAccessWatchdog(
        options.RoundWriteStallThreshold, OnRoundWriteStalled, OnRoundWriteRecovered);

    /// <summary>Starts writing a promoted round to disk. Runs on the learner thread after the promotion gate.</summary>
    private void StartPublishing(PromotedRound round, ModelManifest manifest)
    {
        Debug.Assert(publishing is null, "The previous round must be completed first.");
        publishedWeights ??= ModelFactory.Create(trainer!.Spec);
        ModelFactory.CopyWeights(trainer!.Module, publishedWeights);
        ModelSpec spec = trainer.Spec;
        ReplayExample[] replay = [.. CheckpointReplay()];
        List<LabeledExample> holdouts = evaluator.Tasks.SelectMany(evaluator.Examples).ToList();
        FileAccessWatchdog watchdog = RoundWriteWatchdog;

        // The training log's flush is the round write's first step. It runs on the learner thread, in the checkpoint
        // directory, and a hung volume blocks it too. So does the optimizer file when it is too large to copy.
        watchdog.Start("round write", Checkpoints.RootDirectory);
        LearnerCheckpoint metadata;
        ModuleFiles? copiedFiles = null;
        string? preparedHere = null;
        try
        {
            metadata = CheckpointMetadata(ReachedOffsets(), round.Summary);
            copiedFiles = CopyOptimizerAndTeacher();
            if (copiedFiles is null)
            {
                FaultHooks.BeforeCheckpointPrepare?.Invoke();
                preparedHere = Checkpoints.Prepare(WriteOptimizerAndTeacher);
            }
        }
        catch
        {
            copiedFiles?.Dispose();
            watchdog.Finish();
            throw;
        }

        nn.Module<Tensor, Tensor> weights = publishedWeights;
        LearnerCheckpointStore checkpoints = Checkpoints;
        Action? beforePrepare = FaultHooks.BeforeCheckpointPrepare;
        Action? beforeWrite = FaultHooks.BeforeRoundWrite;
        publishingRound = round;
        publishing = Task.Run(() =>
        {
            try
            {
                return Write();
            }
            finally
            {
                copiedFiles?.Dispose();
                watchdog.Finish();
            }
        });

        (ModelVersion Version, LearnerCheckpoint Checkpoint) Write()
        {
            string prepared = preparedHere ?? checkpoints.Prepare(directory =>
            {
                beforePrepare?.Invoke();
                copiedFiles!.WriteTo(directory);
            });

            // A server that reads this store loads the version once it is saved. A learner killed before the checkpoint is
            // complete restarts from the previous checkpoint and trains past the version. So the checkpoint's files are
            // written first, and only the checkpoint's flush and rename come after the save.
            ModelVersion version;
            try
            {
                watchdog.Enter(prepared);
                weights.save(Path.Combine(prepared, LearnerCheckpoint.WeightsFileName));
                ExampleFile.WriteReplay(Path.Combine(prepared, LearnerCheckpoint.ReplayFileName), replay);
                ExampleFile.WriteExamples(Path.Combine(prepared, LearnerCheckpoint.HoldoutsFileName), holdouts);
                watchdog.Enter(store.RootDirectory);
                beforeWrite?.Invoke();
                version = store.Save(spec, weights, manifest);
            }
            catch
            {
                LearnerCheckpointStore.Abandon(prepared);
                throw;
            }

            watchdog.Enter(prepared);
            LearnerCheckpoint saved = checkpoints.Complete(
                prepared,
                metadata with { ModelVersion = version.Number, ExamplesTrained = version.Manifest.ExamplesTrained },
                writeFiles: null);
            return (version, saved);
        }
    }

    /// <summary>
    /// Copies the optimizer state and the teacher's weights into memory for the round-write task, or returns null when
    /// the optimizer state is larger than <see cref="MaxCopiedOptimizerBytes"/>.
    /// </summary>
    private ModuleFiles? CopyOptimizerAndTeacher()
    {
        using (TensorFileImage optimizerState = trainer!.OptimizerStateImage())
        {
            if (optimizerState.Length > MaxCopiedOptimizerBytes)
            {
                return null;
            }

            var files = new ModuleFiles { Optimizer = optimizerState.ToBuffer() };
            try
            {
                files.Teacher = trainer.SerializeTeacher();
                return files;
            }
            catch
            {
                files.Dispose();
                throw;
            }
        }
    }

    /// <summary>
    /// Finishes the round being written once it is on disk: commits its offsets, publishes its metrics and status,
    /// and raises <see cref="VersionPublished"/>. With <paramref name="wait"/> false it returns at once while the
    /// round is still being written. Rethrows the error of a failed write.
    /// </summary>
    private void CompletePublishing(IConsumer<byte[]?, byte[]?> consumer, bool wait)
    {
        if (publishing is null)
        {
            return;
        }

        if (wait)
        {
            WaitForRoundWrite(consumer, publishing);
        }
        else if (!publishing.IsCompleted)
        {
            return;
        }

        PromotedRound round = publishingRound!;
        Task<(ModelVersion Version, LearnerCheckpoint Checkpoint)> written = publishing;
        publishing = null;
        publishingRound = null;
        ModelVersion version;
        try
        {
            (version, checkpoint) = written.GetAwaiter().GetResult();
        }
        catch (IOException)
        {
            ReliabilityMetrics.LearnerCheckpoints.WithLabels("failed").Inc();
            throw;
        }

        latest = version;
        ReliabilityMetrics.LearnerCheckpoints.WithLabels("written").Inc();
        rollbacksSinceRound = 0;
        CommitOffsets(consumer, round.Offsets);
        PublishMetrics(round, consumer);
        LogRound(logger, version.Number, round.Reason, round.Task, round.Trained, round.Summary.AverageAccuracy, round.Summary.BackwardTransfer, round.MeanLoss);
        lock (statusLock)
        {
            status = status with
            {
                Trained = status.Trained + round.Trained,
                HeldOut = status.HeldOut + round.HeldOut,
                LatestVersion = version.Number,
                LastLoss = round.MeanLoss,
                AccuracyByTask = round.Accuracies,
                RoundPosition = round.Offsets.Sum(offset => offset.Offset.Value),
            };
        }

        ContinualServeMetrics.LearnerRoundDuration.Observe(Stopwatch.GetElapsedTime(round.Started).TotalSeconds);
        ContinualServeMetrics.LearnerLastVersionTimestamp.Set(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0);
        VersionPublished?.Invoke(version);
    }

    /// <summary>
    /// Waits for <paramref name="write"/> to end while the consumer stays in its group. A write that is not done within
    /// <see cref="PausedPollInterval"/> pauses the assigned partitions, and the consumer is then polled once per interval,
    /// so a write stalled past max.poll.interval.ms does not drop the learner from its group.
    /// </summary>
    private void WaitForRoundWrite(IConsumer<byte[]?, byte[]?> consumer, Task write)
    {
        while (Task.WaitAny([write], PausedPollInterval) < 0)
        {
            PausePollOnce(consumer);
        }

        ResumeAfterWork(consumer);
    }

    /// <summary>Waits for a round still being written when the learner thread exits with an error, and logs a failed write.</summary>
    private void WaitForPublishing()
    {
        if (publishing is null)
        {
            return;
        }

        try
        {
            publishing.GetAwaiter().GetResult();
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            LogPublishingFailed(logger, exception, publishingRound?.Task ?? 0);
        }
    }

    // Runs on a timer thread. The write cannot be cancelled, so the learner reports itself not ready until it ends.
    private void OnRoundWriteStalled(WatchedFileAccess access, TimeSpan elapsed)
    {
        lock (statusLock)
        {
            status = status with { IsRoundWriteStalled = true };
        }

        LogRoundWriteStalled(logger, access.Path, elapsed.TotalSeconds, options.RoundWriteStallThreshold.TotalSeconds);
        ReportReadiness();
    }

    private void OnRoundWriteRecovered(WatchedFileAccess access, TimeSpan elapsed)
    {
        lock (statusLock)
        {
            status = status with { IsRoundWriteStalled = false };
        }

        LogRoundWriteRecovered(logger, elapsed.TotalSeconds);
        ReportReadiness();
    }

    /// <summary>A promoted round: what its version includes and what to report once it is on disk.</summary>
    private sealed record PromotedRound(
        string Reason,
        int Task,
        long Trained,
        long HeldOut,
        EvaluationSummary Summary,
        IReadOnlyDictionary<int, double> Accuracies,
        double MeanLoss,
        double? MeanLogitLoss,
        double? MeanLabelLoss,
        TopicPartitionOffset[] Offsets,
        long Started);

    [LoggerMessage(EventId = 267, Level = LogLevel.Warning, Message = "The round write at {Path} has run for {Seconds:F1} s, longer than Learner:RoundWriteStallThreshold ({ThresholdSeconds} s), so the next round waits and the learner reports itself not ready until it ends. Check the volume: a hung NFS server or a failing disk can block fsync")]
    private static partial void LogRoundWriteStalled(ILogger logger, string path, double seconds, double thresholdSeconds);

    [LoggerMessage(EventId = 268, Level = LogLevel.Information, Message = "The stalled round write ended after {Seconds:F1} s")]
    private static partial void LogRoundWriteRecovered(ILogger logger, double seconds);

    [LoggerMessage(EventId = 254, Level = LogLevel.Error, Message = "Writing the version and checkpoint of a task {Task} round failed while the learner stopped")]
    private static partial void LogPublishingFailed(ILogger logger, Exception exception, int task);
}
