using Prometheus;

namespace ContinualServe.Model.Telemetry;

/// <summary>Metrics of the learner's fault handling, the management API and the HTTPS certificates, created once and shared.</summary>
public static class ReliabilityMetrics
{
    // Without a learner, a server exports nothing here rather than a 0 that the not-ready alert would take for a learner.
    public static readonly Gauge LearnerReady = Metrics.CreateGauge(
        "continualserve_learner_ready",
        "1 while the learner reaches the Kafka brokers, is not paused or diverged and has no stalled round write, 0 otherwise.",
        new GaugeConfiguration { SuppressInitialValue = true });

    public static readonly Counter LearnerCheckpoints = CounterSeries.CreateAtZero(
        "continualserve_learner_checkpoints_total",
        "Learner checkpoints written, by outcome (written, failed).",
        "outcome",
        ["written", "failed"]);

    public static readonly Counter LearnerRollbacks = Metrics.CreateCounter(
        "continualserve_learner_rollbacks_total",
        "Rollbacks of the learner to its last checkpoint after repeated non-finite losses.");

    public static readonly Counter KafkaCommitFailures = Metrics.CreateCounter(
        "continualserve_kafka_commit_failures_total",
        "Offset commits that failed; the checkpoint keeps the offsets, so no example is lost or repeated.");

    public static readonly Counter ManagementRequests = CounterSeries.CreateAtZero(
        "continualserve_management_requests_total",
        "Management API requests, by outcome (ok, unauthorized, forbidden, bad_request, not_found, conflict, unavailable, store_write_failed, store_read_failed).",
        "outcome",
        ["ok", "unauthorized", "forbidden", "bad_request", "not_found", "conflict", "unavailable", "store_write_failed", "store_read_failed"]);

    // Exported only by a process that listens with a certificate file, one series per setting that names one.
    public static readonly Gauge HttpsCertificateExpiry = Metrics.CreateGauge(
        "continualserve_https_certificate_expiry_timestamp_seconds",
        "Unix time at which the HTTPS certificate that a setting names expires (its NotAfter), read from the file every minute.",
        new GaugeConfiguration { LabelNames = ["setting"] });

    /// <summary>
    /// Creates this class's metrics, each labelled counter with every series at 0, at a role's start rather than at the
    /// first management request or certificate read.
    /// </summary>
    internal static void ExportKnownSeries()
    {
        // Reading a static field runs the class's field initializers, which create every metric above. A call to a
        // method alone might not: the class has no static constructor, so the runtime need only run them before the
        // first field access.
        GC.KeepAlive(ManagementRequests);
    }
}
