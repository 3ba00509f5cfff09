using System.Diagnostics;
using ContinualServe.Learner.Promotion;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner;

/// <summary>
/// Holding a candidate while the golden set exists but cannot be read or does not fit the model. The gate would reject
/// every candidate then, and each rejected round's examples would be discarded with their offsets committed, so an
/// unusable golden set written by hand would cost every example streamed until someone fixed it. Instead the learner
/// keeps the candidate, consumes and commits nothing, reports itself not ready, and checks the golden set again every
/// <see cref="GoldenSetRecheckInterval"/> while it polls Kafka with its partitions paused, and the pause marker as often
/// as between records. Once the golden set can be read, or is removed, the gate reviews the held candidate as usual.
/// </summary>
public sealed partial class ContinualLearner
{
    private static readonly TimeSpan GoldenSetRecheckInterval = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Waits until the golden set can be used, or is removed, and returns the read that the gate reviews the candidate
    /// with, so the file is read once per round. Returns null when the learner stops first. Runs on the learner thread
    /// before the gate's review. A gate that is off promotes every candidate, so no candidate waits for it.
    /// </summary>
    private GoldenSetRead? HoldWhileGoldenSetUnusable()
    {
        GoldenSetRead golden = promotionGate!.ReadGoldenSet();
        if (!golden.IsUnusable || !promotionGate.Enabled)
        {
            return golden;
        }

        long heldSince = Stopwatch.GetTimestamp();
        // The event's message puts a period after the problem, so the problem's own final period is dropped.
        LogCandidateHeld(logger, trainedSinceRound, golden.Failure!.Message.TrimEnd('.'), GoldenSetRecheckInterval.TotalSeconds);
        SetGoldenSetUnusable(true);
        try
        {
            long goldenSetReadAt = Stopwatch.GetTimestamp();
            while (golden.IsUnusable)
            {
                if (stopping?.IsCancellationRequested ?? false)
                {
                    return null;
                }

                // The wait ends early when the learner stops, so the interval does not delay a stop.
                Task wait = Task.Delay(PauseMarkerCheckInterval, stopping?.Token ?? CancellationToken.None)
                    .ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
                WaitPolling(wait);

                // An operator may pause learning while the candidate is held. The status shows the pause within
                // PauseMarkerCheckInterval, and after the review the learner reads no new records.
                _ = RefreshPauseMarker();
                if (Stopwatch.GetElapsedTime(goldenSetReadAt) >= GoldenSetRecheckInterval)
                {
                    golden = promotionGate.ReadGoldenSet();
                    goldenSetReadAt = Stopwatch.GetTimestamp();
                }
            }
        }
        finally
        {
            SetGoldenSetUnusable(false);
        }

        double heldSeconds = Stopwatch.GetElapsedTime(heldSince).TotalSeconds;
        LogCandidateReleased(logger, heldSeconds);
        return golden;
    }

    private void SetGoldenSetUnusable(bool unusable)
    {
        lock (statusLock)
        {
            status = status with { IsGoldenSetUnusable = unusable };
        }

        ReportReadiness();
    }

    [LoggerMessage(EventId = 235, Level = LogLevel.Error, Message = "The golden set cannot be used: {Problem}. The candidate trained on {Trained} new examples is held, not rejected: the learner consumes and commits nothing and is not ready, and it checks the golden set again every {Seconds} s. Upload a valid golden set (PUT /manage/v1/golden-set) or remove it (DELETE /manage/v1/golden-set)")]
    private static partial void LogCandidateHeld(ILogger logger, long trained, string problem, double seconds);

    [LoggerMessage(EventId = 236, Level = LogLevel.Information, Message = "The golden set can be used again after {Seconds:F1} s, so the gate reviews the held candidate")]
    private static partial void LogCandidateReleased(ILogger logger, double seconds);
}
