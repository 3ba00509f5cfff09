using ContinualServe.Model.Store;

namespace ContinualServe.Server.StatusPage;

/// <summary>What <c>/ui/api/status</c> returns: the live version, its evaluation, recent history and the learner's state.</summary>
public sealed record StatusSnapshot
{
    public required string Model { get; init; }

    /// <summary>The version that serves requests now; null before the first version is loaded.</summary>
    public long? Version { get; init; }

    public long? ParentVersion { get; init; }

    public DateTimeOffset? CreatedAt { get; init; }

    public long ExamplesTrained { get; init; }

    /// <summary>The live version's continual-learning evaluation, from its manifest.</summary>
    public EvaluationSummary? Evaluation { get; init; }

    /// <summary>One point per version that became live, oldest first.</summary>
    public required IReadOnlyList<VersionPoint> Versions { get; init; }

    /// <summary>Inference traffic per sampling interval, oldest first.</summary>
    public required IReadOnlyList<TrafficPoint> Traffic { get; init; }

    /// <summary>The learner that runs in this process; null in a process without one (serve).</summary>
    public LearnerSummary? Learner { get; init; }

    /// <summary>
    /// The HTTPS certificate files that the process serves, with the days left until each expires. Empty when no
    /// setting names a certificate file (no HTTPS listener, or one with the development certificate).
    /// </summary>
    public required IReadOnlyList<CertificateSummary> Certificates { get; init; }

    public required DateTimeOffset GeneratedAt { get; init; }
}

/// <summary>
/// A version that became live, with the accuracy on each seen task's holdout (last matrix row). A version without an
/// evaluation, such as the untrained version 1 of a new store, has a null average and no tasks.
/// </summary>
public sealed record VersionPoint(
    long Version,
    DateTimeOffset LiveSince,
    double? AverageAccuracy,
    IReadOnlyDictionary<int, double> AccuracyByTask);

/// <summary>
/// Inference traffic during one sampling interval. Latency quantiles are estimated from the histogram
/// buckets of <c>continualserve_inference_duration_seconds</c>, as Prometheus's histogram_quantile does;
/// they are null when no request finished in the interval.
/// </summary>
public sealed record TrafficPoint(
    DateTimeOffset Time,
    double RequestsPerSecond,
    double ErrorRatio,
    double? P50Seconds,
    double? P99Seconds);
