using System.Diagnostics;
using Confluent.Kafka;
using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Evaluation;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner;

public sealed partial class ContinualLearner
{
    private const string RejectedRoundWrite = "checkpoint write after a rejected round";

    /// <summary>
    /// Drops a candidate the promotion gate rejected. It is never saved to the model store, so no server can load
    /// it, and it is never announced. The trainer goes back to the live version's weights (with a fresh optimizer)
    /// and the accuracy matrix to the live version's, so the next candidate is judged against what serves.
    /// The replay buffer keeps what it stored during the round (examples and their logits at that time). The analytic
    /// strategy reloads its running sums from the newest checkpoint, so the rejected round's examples leave them. A
    /// gradient strategy whose live version came from the analytic strategy refits the head from those sums.
    /// Then a learner checkpoint of the live version is written with the positions reached, and its offsets are
    /// committed, as after a promoted round. The rejected examples (counted as discarded) are therefore not read again,
    /// neither by this process nor after a restart, and the group's committed offsets do not fall behind the stream.
    /// A failed checkpoint write stops the learner, as a failed round write does, and commits nothing. The count of
    /// rollbacks since the last published round stays, because no round was published.
    /// </summary>
    // NOTE: when every round of a new task forgets past the limits (DER++ on the 1,205-example test slice does),
    // each candidate is rejected and the learner stays on the live version; rejected counts then keep rising.
    private void DiscardCandidate(IConsumer<byte[]?, byte[]?> consumer, long started)
    {
        string? analyticSums = ReloadLiveVersion();

        // NOTE: if every round of a task was rejected, the live matrix has no row for it and the next task's row
        // leaves that task out of ACC until a promoted version covers it.
        matrix = AccuracyMatrix.FromSummary(latest!.Manifest.Evaluation);
        SaveRejectedRoundCheckpoint(analyticSums);
        CommitCheckpointOffsets(consumer);
        LogCandidateDiscarded(logger, trainedSinceRound, latest.Number, checkpoint!.Sequence);
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
    /// Writes the checkpoint of the live version after a rejected round, under the round-write stall watch, with the
    /// offsets reached. <paramref name="analyticSums"/> is the file that <see cref="ReloadLiveVersion"/> reset the
    /// trainer from, or null. The learner thread polls the consumer while most of the write runs on a thread-pool task.
    /// </summary>
    private void SaveRejectedRoundCheckpoint(string? analyticSums)
    {
        // A gradient strategy saves Adam moments, which would replace the analytic sums that the next rejection refits
        // the live version's head from, so the checkpoint keeps a copy of the sums. The analytic strategy saves its sums.
        string? keptSums = !options.Trainer.IsAnalytic && analyticSums is not null && AnalyticHead.IsHeadFile(analyticSums)
            ? analyticSums
            : null;

        // After Learner:TrainFromPin made an older version the base, the checkpoints of that base are meant to be older
        // than the store's newest version, so a restart continues from the base.
        bool fromPin = checkpoint is { FromPin: true } previous && previous.ModelVersion == latest!.Number;
        SaveCheckpointUnderWatch(RejectedRoundWrite, fromPin, keptSums);
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

    [LoggerMessage(EventId = 213, Level = LogLevel.Warning, Message = "Discarded a rejected candidate trained on {Trained} new examples; training goes on from live version {Version}, and learner checkpoint {Sequence} of that version records the offsets after them")]
    private static partial void LogCandidateDiscarded(ILogger logger, long trained, long version, long sequence);
}
