using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Faults;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace ContinualServe.Learner;

/// <summary>
/// Learner:TrainFromPin: training from the version that an operator pinned by a rollback. The learner reads the store's
/// pinned-version file at start and at each round boundary. A pin of a version older than the learner's base becomes the
/// new base, unless the base was trained from that pin after the pin was written. The round's training is then discarded
/// as a rejected candidate's is, and the trainer takes the pinned version's weights with a fresh optimizer. The replay
/// buffer, the holdout sets and the Kafka positions stay, so the records read since the pinned version are not read
/// again. The gate then compares candidates with the pinned version's evaluation, and the next version's parent is the
/// pinned version. A pin of the base or of a newer version, and a removed pin, change nothing. The analytic strategy's
/// head is a fit of running sums over every example since the start, so that strategy moves to the pinned version only
/// when a retained learner checkpoint of that version contains the sums behind it.
/// </summary>
public sealed partial class ContinualLearner
{
    private const string PinnedVersionLoad = "pinned version read for Learner:TrainFromPin";

    // The pin that the learner last decided about, so that each pin is checked, and warned about, once.
    private long? decidedPin;
    private string? pinProblem;

    /// <summary>
    /// Returns the pinned version to train from when the store's pin is new and qualifies, or null. Reads the pin file,
    /// and the pinned version's manifest and checkpoints when the pin changed, under the file-read watch. The reads run
    /// on a thread-pool task while the learner thread polls the consumer, so a stalled read keeps the learner in its group.
    /// </summary>
    private PinnedBase? TakePinToTrainFrom()
    {
        if (!options.TrainFromPin)
        {
            return null;
        }

        FileAccessWatchdog watchdog = FileReadWatchdog;
        watchdog.Start(PinnedVersionLoad, Path.Combine(store.RootDirectory, StoreControlFiles.PinnedVersionFileName));
        Action? beforeRead = FaultHooks.BeforePinRead;
        try
        {
            return WaitPolling(Task.Run(() =>
            {
                beforeRead?.Invoke();
                return ReadPinToTrainFrom();
            }));
        }
        finally
        {
            watchdog.Finish();
        }
    }

    // Runs on a thread-pool task while the learner thread waits in WaitPolling, so it reads no Kafka positions.
    private PinnedBase? ReadPinToTrainFrom()
    {
        if (!StoreControlFiles.TryReadPinnedVersion(store.RootDirectory, out long? pinned, out string? problem))
        {
            WarnPinUnreadable(problem);
            return null;
        }

        pinProblem = null;
        if (pinned == decidedPin)
        {
            return null;
        }

        decidedPin = pinned;
        return pinned is long number ? PinnedVersionToTrainFrom(number) : null;
    }

    private void WarnPinUnreadable(string problem)
    {
        if (!string.Equals(problem, pinProblem, StringComparison.Ordinal))
        {
            pinProblem = problem;
            LogPinUnreadable(logger, problem, latest!.Number);
        }
    }

    /// <summary>Applies the rules of Learner:TrainFromPin to a pin of <paramref name="pinned"/> and returns the base to train from, or null.</summary>
    private PinnedBase? PinnedVersionToTrainFrom(long pinned)
    {
        ModelVersion current = latest!;
        if (pinned >= current.Number)
        {
            return null;
        }

        DateTime pinWrittenAt = File.GetLastWriteTimeUtc(Path.Combine(store.RootDirectory, StoreControlFiles.PinnedVersionFileName));
        if (TrainedFromPin(pinned, pinWrittenAt))
        {
            return null;
        }

        if (!store.TryLoad(pinned, out ModelVersion? version))
        {
            LogPinnedVersionUnusable(logger, pinned, "it is missing or corrupt (event 101 of the model store names the problem)", current.Number);
            return null;
        }

        if (!string.Equals(version!.Spec.ToJson(), trainer!.Spec.ToJson(), StringComparison.Ordinal))
        {
            LogPinnedVersionUnusable(logger, pinned, "its spec differs from the spec the learner trains", current.Number);
            return null;
        }

        if (!options.Trainer.IsAnalytic)
        {
            return new PinnedBase(version, AnalyticSums: null);
        }

        // Only the newest Learner:Checkpoint:RetainedCheckpoints checkpoints are kept, so an older pin has none.
        if (Checkpoints.TryLoadForVersion(pinned) is not { } found)
        {
            LogPinKeptAnalytic(logger, pinned, current.Number);
            return null;
        }

        return new PinnedBase(version, Path.Combine(found.Directory, LearnerCheckpoint.OptimizerFileName));
    }

    /// <summary>
    /// Returns true when the base descends from <paramref name="pinned"/> through versions created after the pin was
    /// written: the learner trained them from the pin already, so the pin is not one that rolled the base back.
    /// </summary>
    // NOTE: the pin file's time comes from the store volume's clock and CreatedAt from the learner's clock. A skew larger
    // than the time from a version's publication to the rollback that pins an older one makes this check wrong.
    private bool TrainedFromPin(long pinned, DateTime pinWrittenAt)
    {
        ModelVersion version = latest!;
        while (version.Manifest.CreatedAt.UtcDateTime >= pinWrittenAt)
        {
            if (version.Manifest.ParentVersion is not long parent || parent < pinned)
            {
                return false;
            }

            if (parent == pinned)
            {
                return true;
            }

            // A parent that retention deleted ends the walk. Every version seen so far was created after the pin.
            if (!store.TryLoad(parent, out ModelVersion? loaded))
            {
                return true;
            }

            version = loaded!;
        }

        return false;
    }

    /// <summary>
    /// Makes the pinned version the base. Drops the training since the last round, as a rejected candidate's is dropped,
    /// and loads the pinned weights with a fresh optimizer, with the analytic sums behind them for the analytic strategy.
    /// Then writes a learner checkpoint of the new base at the consumer's positions and commits its offsets, polling the
    /// consumer with its partitions paused during the write. At start, before the consumer exists, nothing is polled or
    /// committed. Returns false, and keeps the base, when the weights or the sums cannot be loaded.
    /// </summary>
    private bool TrainFromPinnedVersion(PinnedBase target)
    {
        ModelVersion pinned = target.Version;
        long previous = latest!.Number;
        ContinualTrainer reset = trainer!;
        FileAccessWatchdog watchdog = FileReadWatchdog;
        watchdog.Start(PinnedVersionLoad, pinned.WeightsPath);
        Action? beforeLoad = FaultHooks.BeforePinnedVersionLoad;
        NativeBufferStream? weightsFile = null;
        try
        {
            // The files are read on a thread-pool task while the learner thread polls, and loaded on the learner thread.
            AnalyticSums? sums;
            (weightsFile, sums) = WaitPolling(Task.Run(() =>
            {
                beforeLoad?.Invoke();
                NativeBufferStream read = NativeBufferStream.ReadFile(pinned.WeightsPath);
                try
                {
                    if (target.AnalyticSums is not null)
                    {
                        watchdog.Enter(target.AnalyticSums);
                    }

                    return (read, reset.ReadAnalyticSums(target.AnalyticSums));
                }
                catch
                {
                    read.Dispose();
                    throw;
                }
            }));

            // The sums are read before the trainer changes, so a file that cannot be read leaves the trainer as it was.
            using nn.Module<Tensor, Tensor> weights = pinned.LoadModule(device, weightsFile);
            reset.ResetWeights(weights, sums);
        }
        catch (Exception exception) when (exception is IOException or InvalidDataException)
        {
            LogPinnedVersionUnusable(logger, pinned.Number, "its weights or the running sums in its learner checkpoint cannot be loaded: " + exception.Message, previous);
            return false;
        }
        finally
        {
            weightsFile?.Dispose();
            watchdog.Finish();
        }

        latest = pinned;
        matrix = Evaluation.AccuracyMatrix.FromSummary(pinned.Manifest.Evaluation);

        // A rollback after diverged training and a restart load the newest checkpoint, so it must contain the new base.
        // Its offsets are committed at once, because the stream may end before the next round publishes and commits.
        SaveCheckpointUnderWatch("checkpoint write of a pinned base", fromPin: true);
        if (groupConsumer is { } consumer)
        {
            CommitCheckpointOffsets(consumer);
            ResumeAfterWork(consumer);
        }

        rollbacksSinceRound = 0;
        LogTrainingFromPin(logger, previous, pinned.Number, trainedSinceRound);
        ContinualServeMetrics.LearnerExamples.WithLabels("discarded").Inc(trainedSinceRound);
        lock (statusLock)
        {
            status = status with
            {
                HeldOut = status.HeldOut + heldOutSinceRound,
                LatestVersion = pinned.Number,
                RoundPosition = positions.Values.Sum(),
            };
        }

        trainedSinceRound = 0;
        heldOutSinceRound = 0;
        lossSum = logitLossSum = labelLossSum = 0;
        lossSteps = 0;
        return true;
    }

    /// <summary>A pinned version to train from, with the analytic strategy's file of the running sums behind it.</summary>
    private sealed record PinnedBase(ModelVersion Version, string? AnalyticSums);

    [LoggerMessage(EventId = 281, Level = LogLevel.Information, Message = "Learner:TrainFromPin: the store pins version {NewBase}, so the learner trains from it instead of version {OldBase} and discarded the {Discarded} examples trained since the last round. The next version's parent is {NewBase}")]
    private static partial void LogTrainingFromPin(ILogger logger, long oldBase, long newBase, long discarded);

    [LoggerMessage(EventId = 282, Level = LogLevel.Warning, Message = "Learner:TrainFromPin: the pinned version {Pinned} cannot be trained from, because {Reason}, so the learner keeps training from version {Base}")]
    private static partial void LogPinnedVersionUnusable(ILogger logger, long pinned, string reason, long @base);

    [LoggerMessage(EventId = 283, Level = LogLevel.Warning, Message = "Learner:TrainFromPin: the store pins version {Pinned}, but the analytic strategy's head is a fit of running sums over every example since the start, and no retained learner checkpoint contains the sums behind version {Pinned}, so the learner keeps training from version {Base}")]
    private static partial void LogPinKeptAnalytic(ILogger logger, long pinned, long @base);

    [LoggerMessage(EventId = 284, Level = LogLevel.Warning, Message = "Learner:TrainFromPin: the pinned-version file cannot be read ({Problem}), so the learner keeps training from version {Base}")]
    private static partial void LogPinUnreadable(ILogger logger, string problem, long @base);
}
