using Prometheus;

namespace ContinualServe.Model.Telemetry;

/// <summary>
/// Prometheus metrics shared by the server and the learner, created once per process.
/// Names follow Prometheus conventions: the continualserve_ prefix, base units, _total for counters,
/// and only low-cardinality labels (model, task, outcome, decision, component, partition).
/// </summary>
public static class ContinualServeMetrics
{
    public static readonly Counter InferenceRequests = Metrics.CreateCounter(
        "continualserve_inference_requests_total",
        "Inference requests by model and outcome (ok, bad_request, too_large, not_found, rejected, timeout, unavailable, aborted, error).",
        new CounterConfiguration { LabelNames = ["model", "outcome"] });

    /// <summary>The values of <see cref="InferenceRequests"/>' outcome label.</summary>
    public static IReadOnlyList<string> InferenceOutcomes { get; } =
        ["ok", "bad_request", "too_large", "not_found", "rejected", "timeout", "unavailable", "aborted", "error"];

    public static readonly Histogram InferenceDuration = Metrics.CreateHistogram(
        "continualserve_inference_duration_seconds",
        "Time from request start to response, in seconds, of requests queued for a forward pass (outcomes ok, timeout and error).",
        new HistogramConfiguration
        {
            LabelNames = ["model"],
            Buckets = Histogram.ExponentialBuckets(0.0001, 2, 16),
        });

    public static readonly Histogram BatchSize = Metrics.CreateHistogram(
        "continualserve_batch_size",
        "Examples per forward pass.",
        new HistogramConfiguration
        {
            LabelNames = ["model"],
            Buckets = [1, 2, 4, 8, 16, 32, 64, 128, 256],
        });

    public static readonly Histogram QueueDuration = Metrics.CreateHistogram(
        "continualserve_queue_duration_seconds",
        "Time a request waited in the batching queue before its forward pass, in seconds.",
        new HistogramConfiguration
        {
            LabelNames = ["model"],
            Buckets = Histogram.ExponentialBuckets(0.00005, 2, 16),
        });

    public static readonly Gauge ModelVersion = Metrics.CreateGauge(
        "continualserve_model_version",
        "Version number of the model that answers requests.",
        new GaugeConfiguration { LabelNames = ["model"] });

    public static readonly Counter ModelSwaps = Metrics.CreateCounter(
        "continualserve_model_swaps_total",
        "Times a new version replaced the live model.",
        new CounterConfiguration { LabelNames = ["model"] });

    public static readonly Counter ModelDownloads = CounterSeries.CreateAtZero(
        "continualserve_model_downloads_total",
        "Version downloads by a server replica by outcome (ok, corrupt: SHA-256 mismatch, failed: transfer or load error).",
        "outcome",
        ["ok", "corrupt", "failed"]);

    public static readonly Counter LearnerExamples = CounterSeries.CreateAtZero(
        "continualserve_learner_examples_total",
        "Examples consumed by the learner by outcome (trained, holdout, invalid, lost, discarded with a rejected candidate, late_task: also trained).",
        "outcome",
        ["trained", "holdout", "invalid", "lost", "discarded", "late_task"]);

    public static readonly Histogram LearnerRoundDuration = Metrics.CreateHistogram(
        "continualserve_learner_round_duration_seconds",
        "Time to evaluate and publish one round, in seconds.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.01, 2, 14) });

    public static readonly Gauge LearnerLoss = Metrics.CreateGauge(
        "continualserve_learner_loss",
        "Mean training loss over the last round by component (new, replay_logits, replay_labels, total).",
        new GaugeConfiguration { LabelNames = ["component"] });

    public static readonly Gauge TaskAccuracy = Metrics.CreateGauge(
        "continualserve_task_accuracy",
        "Accuracy of the newest promoted version on each seen task's holdout, from 0 to 1.",
        new GaugeConfiguration { LabelNames = ["task"] });

    public static readonly Gauge TaskForgetting = Metrics.CreateGauge(
        "continualserve_task_forgetting",
        "Forgetting per task: the best earlier accuracy on the task minus the current one.",
        new GaugeConfiguration { LabelNames = ["task"] });

    public static readonly Gauge AverageAccuracy = Metrics.CreateGauge(
        "continualserve_average_accuracy",
        "Mean accuracy over all seen tasks' holdouts.");

    // Suppressed until the first promoted version with a golden set, so that a server without one exports no 0 to alert on.
    public static readonly Gauge GoldenSetAccuracy = Metrics.CreateGauge(
        "continualserve_golden_set_accuracy",
        "Accuracy of the newest promoted version on the operator's golden set.",
        new GaugeConfiguration { SuppressInitialValue = true });

    public static readonly Gauge BackwardTransfer = Metrics.CreateGauge(
        "continualserve_backward_transfer",
        "Mean change of accuracy on earlier tasks since each was learned (negative means forgetting).");

    public static readonly Counter Promotions = CounterSeries.CreateAtZero(
        "continualserve_promotions_total",
        "Candidate versions by promotion decision (promoted, rejected).",
        "decision",
        ["promoted", "rejected"]);

    public static readonly Counter PromotionRejections = CounterSeries.CreateAtZero(
        "continualserve_promotion_rejections_total",
        "Rejected candidates by reason (forgetting, accuracy_drop, accuracy_floor, golden_set, golden_set_unreadable).",
        "reason",
        ["forgetting", "accuracy_drop", "accuracy_floor", "golden_set", "golden_set_unreadable"]);

    public static readonly Gauge ReplayBufferExamples = Metrics.CreateGauge(
        "continualserve_replay_buffer_examples",
        "Examples held in the replay buffer.");

    public static readonly Gauge KafkaConsumerLag = Metrics.CreateGauge(
        "continualserve_kafka_consumer_lag",
        "Records between the learner's position and the partition's high watermark.",
        new GaugeConfiguration { LabelNames = ["partition"] });

    public static readonly Counter DeadLetters = Metrics.CreateCounter(
        "continualserve_dead_letters_total",
        "Invalid records the learner sent to the dead-letter topic.");

    public static readonly Counter DeadLetterFailures = Metrics.CreateCounter(
        "continualserve_dead_letter_failures_total",
        "Dead letters not written: rejected by the producer, not acknowledged by the broker, or undelivered when the learner stopped.");

    public static readonly Counter LearnerSkippedSteps = Metrics.CreateCounter(
        "continualserve_learner_skipped_steps_total",
        "Training steps skipped because the loss was NaN or infinite.");

    public static readonly Gauge LearnerLastVersionTimestamp = Metrics.CreateGauge(
        "continualserve_learner_last_version_timestamp_seconds",
        "Unix time at which the learner last published a version, in seconds.");

    public static readonly Gauge AccuracyMatrix = Metrics.CreateGauge(
        "continualserve_accuracy_matrix",
        "Accuracy matrix R[i][j] of the newest promoted version: holdout accuracy on task j after training on task i.",
        new GaugeConfiguration { LabelNames = ["after_task", "task"] });

    /// <summary>
    /// Creates at 0 the series that would otherwise appear with their first event: each outcome of
    /// <see cref="InferenceRequests"/> and the swaps of <paramref name="model"/> when one is given, and the counters of
    /// <see cref="ReliabilityMetrics"/>. A role calls it once at its start.
    /// </summary>
    public static void ExportKnownSeries(string? model)
    {
        if (model is not null)
        {
            foreach (string outcome in InferenceOutcomes)
            {
                InferenceRequests.WithLabels(model, outcome).Inc(0);
            }

            ModelSwaps.WithLabels(model).Inc(0);
        }

        ReliabilityMetrics.ExportKnownSeries();
    }
}
