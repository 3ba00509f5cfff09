using System.Diagnostics;
using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Evaluation;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner;

public sealed partial class ContinualLearner
{
    /// <summary>
    /// Drops a candidate the promotion gate rejected. It is never saved to the model store, so no server can load
    /// it, and it is never announced. The trainer goes back to the live version's weights (with a fresh optimizer)
    /// and the accuracy matrix to the live version's, so the next candidate is judged against what serves.
    /// The rejected round's offsets are not committed, but the consumer keeps its position: those examples are not
    /// trained again (they are counted as discarded), and the next promoted version's manifest and commit cover them. After a crash before that
    /// version, the learner resumes from the live version's offsets and reads them once more.
    /// The replay buffer keeps what it stored during the round (examples and their logits at that time). The analytic
    /// strategy reloads its running sums from the newest checkpoint, so the rejected round's examples leave them. A
    /// gradient strategy whose live version came from the analytic strategy refits the head from those sums.
    /// </summary>
    // NOTE: when every round of a new task forgets past the limits (DER++ on the 1,205-example test slice does),
    // each candidate is rejected and the learner stays on the live version; rejected counts then keep rising.
    private void DiscardCandidate(long started)
    {
        ReloadLiveVersion();

        // NOTE: if every round of a task was rejected, the live matrix has no row for it and the next task's row
        // leaves that task out of ACC until a promoted version covers it.
        matrix = AccuracyMatrix.FromSummary(latest!.Manifest.Evaluation);
        LogCandidateDiscarded(logger, trainedSinceRound, latest.Number);
        ContinualServeMetrics.LearnerExamples.WithLabels("discarded").Inc(trainedSinceRound);
        lock (statusLock)
        {
            status = status with
            {
                HeldOut = status.HeldOut + heldOutSinceRound,
                LatestVersion = latest.Number,
                Rejected = status.Rejected + 1,
                RoundPosition = positions.Values.Sum(),
            };
        }

        trainedSinceRound = 0;
        heldOutSinceRound = 0;
        lossSum = logitLossSum = labelLossSum = 0;
        lossSteps = 0;
        ContinualServeMetrics.LearnerRoundDuration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>
    /// Returns the path of the newest checkpoint's optimizer file after checking its SHA-256, or null when a gradient
    /// strategy finds it unusable.
    /// </summary>
    private string? LiveAnalyticSums()
    {
        // The analytic sums behind the live version are in the newest checkpoint, written when it was promoted. A
        // gradient strategy gets the file too, because a live version from the analytic strategy needs its head refitted.
        try
        {
            return Checkpoints.VerifiedFile(checkpoint!, LearnerCheckpoint.OptimizerFileName);
        }
        catch (Exception exception) when (!options.Trainer.IsAnalytic && exception is IOException or InvalidDataException)
        {
            // The live weights are all a gradient strategy needs, unless its live version came from the analytic strategy.
            LogRevertFileUnusable(logger, exception, checkpoint!.Sequence);
            return null;
        }
    }

    [LoggerMessage(EventId = 224, Level = LogLevel.Warning, Message = "The optimizer file of learner checkpoint {Sequence} is missing or damaged, so the rejected candidate is reverted to the live weights without it")]
    private static partial void LogRevertFileUnusable(ILogger logger, Exception exception, long sequence);

    [LoggerMessage(EventId = 213, Level = LogLevel.Warning, Message = "Discarded a rejected candidate trained on {Trained} new examples; training goes on from live version {Version}")]
    private static partial void LogCandidateDiscarded(ILogger logger, long trained, long version);
}
