using ContinualServe.Learner.Faults;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace ContinualServe.Learner;

/// <summary>
/// Learner:TrainFromPin: training from the version an operator pinned by a rollback. The learner reads the store's
/// pinned-version file at start and at each round boundary. A pin of a version older than the learner's base, where the
/// base is not a version trained from that pin after it was written, becomes the new base: the round's training is
/// discarded as a rejected candidate's is, and the trainer takes the pinned version's weights with a fresh optimizer. The
/// replay buffer, the holdout sets and the Kafka positions stay, so the records read since the pinned version are not
/// read again. The gate then compares candidates with the pinned version's evaluation, and the next version's parent is
/// the pinned version. A pin of the base or of a newer version, and a removed pin, change nothing.
/// </summary>
// NOTE: the analytic strategy keeps its base under a pin: its head is a fit of running sums over every example since the
// start, and restoring the sums from the pinned version's checkpoint (when one of the retained two is that version's) is
// not done yet.
public sealed partial class ContinualLearner
{
    private const string PinnedVersionLoad = "pinned version read for Learner:TrainFromPin";

    // The pin that the learner last decided about, so that each pin is checked, and warned about, once.
    private long? decidedPin;
    private string? pinProblem;

    /// <summary>
    /// Returns the pinned version to train from when the store's pin is new and qualifies, or null. Reads the pin file,
    /// and the pinned version when the pin changed, under the file-read watch.
    /// </summary>
    private ModelVersion? TakePinToTrainFrom()
    {
        if (!options.TrainFromPin)
        {
            return null;
        }

        FileAccessWatchdog watchdog = FileReadWatchdog;
        watchdog.Start(PinnedVersionLoad, Path.Combine(store.RootDirectory, StoreControlFiles.PinnedVersionFileName));
        try
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
        finally
        {
            watchdog.Finish();
        }
    }

    private void WarnPinUnreadable(string problem)
    {
        if (!string.Equals(problem, pinProblem, StringComparison.Ordinal))
        {
            pinProblem = problem;
            LogPinUnreadable(logger, problem, latest!.Number);
        }
    }

    /// <summary>Applies the rules of Learner:TrainFromPin to a pin of <paramref name="pinned"/> and returns the version to train from, or null.</summary>
    private ModelVersion? PinnedVersionToTrainFrom(long pinned)
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

        if (options.Trainer.IsAnalytic)
        {
            LogPinKeptAnalytic(logger, pinned, current.Number);
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

        return version;
    }

    /// <summary>
    /// Returns true when the base descends from <paramref name="pinned"/> through versions created after the pin was
    /// written: the learner trained them from the pin already, so the pin is not one that rolled the base back.
    /// </summary>
    // NOTE: the pin file's time comes from the store volume's clock and CreatedAt from the learner's; a skew between
    // them larger than the time from a version's publication to the rollback that pins an older one misjudges it.
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
    /// Makes <paramref name="pinned"/> the base: drops the training since the last round, as a rejected candidate's is
    /// dropped, and loads the pinned weights with a fresh optimizer. The consumer keeps its position.
    /// </summary>
    private void TrainFromPinnedVersion(ModelVersion pinned)
    {
        long previous = latest!.Number;
        using (nn.Module<Tensor, Tensor> weights = pinned.LoadModule(device))
        {
            trainer!.ResetWeights(weights);
        }

        latest = pinned;
        matrix = Evaluation.AccuracyMatrix.FromSummary(pinned.Manifest.Evaluation);
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
    }

    [LoggerMessage(EventId = 281, Level = LogLevel.Information, Message = "Learner:TrainFromPin: the store pins version {NewBase}, so the learner trains from it instead of version {OldBase} and discarded the {Discarded} examples trained since the last round. The next version's parent is {NewBase}")]
    private static partial void LogTrainingFromPin(ILogger logger, long oldBase, long newBase, long discarded);

    [LoggerMessage(EventId = 282, Level = LogLevel.Warning, Message = "Learner:TrainFromPin: the pinned version {Pinned} cannot be trained from, because {Reason}, so the learner keeps training from version {Base}")]
    private static partial void LogPinnedVersionUnusable(ILogger logger, long pinned, string reason, long @base);

    [LoggerMessage(EventId = 283, Level = LogLevel.Warning, Message = "Learner:TrainFromPin: the store pins version {Pinned}, but the analytic strategy's head is a fit of running sums over every example since the start, and the learner does not restore the sums of an older version, so it keeps training from version {Base}")]
    private static partial void LogPinKeptAnalytic(ILogger logger, long pinned, long @base);

    [LoggerMessage(EventId = 284, Level = LogLevel.Warning, Message = "Learner:TrainFromPin: the pinned-version file cannot be read ({Problem}), so the learner keeps training from version {Base}")]
    private static partial void LogPinUnreadable(ILogger logger, string problem, long @base);
}
