using System.Globalization;
using ContinualServe.Learner;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Server.Hosting;
using ContinualServe.Server.Management;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.StatusPage;

/// <summary>
/// Keeps the status page's recent history in memory: every version that became live (from
/// <see cref="LiveModel.Swapped"/>) and, every <see cref="SampleInterval"/>, the inference traffic since the
/// previous sample. Bounded: the newest <see cref="MaxPoints"/> points of each kind are kept.
/// </summary>
public sealed partial class StatusHistory : BackgroundService
{
    public const int MaxPoints = 300;
    public static readonly TimeSpan SampleInterval = TimeSpan.FromSeconds(2);

    private const string RequestsMetric = "continualserve_inference_requests_total";
    private const string DurationBucketMetric = "continualserve_inference_duration_seconds_bucket";
    private readonly LiveModel live;
    private readonly ContinualLearner? learner;
    private readonly HttpsCertificateExpiryMonitor? certificates;
    private readonly string modelName;
    private readonly TimeProvider time;
    private readonly ILogger<StatusHistory> logger;
    private readonly Lock historyLock = new();
    private readonly Queue<VersionPoint> versions = new();
    private readonly Queue<TrafficPoint> traffic = new();
    private Counts? previous;

    /// <param name="learner">The learner in this process, registered by the roles that run one. Null in serve.</param>
    /// <param name="certificates">The monitor of the HTTPS certificate files, registered when a setting names one.</param>
    public StatusHistory(
        LiveModel live,
        IOptions<ServerOptions> options,
        ILogger<StatusHistory> logger,
        ContinualLearner? learner = null,
        TimeProvider? time = null,
        HttpsCertificateExpiryMonitor? certificates = null)
    {
        ArgumentNullException.ThrowIfNull(live);
        ArgumentNullException.ThrowIfNull(options);
        this.live = live;
        this.learner = learner;
        this.certificates = certificates;
        this.logger = logger;
        this.time = time ?? TimeProvider.System;
        modelName = options.Value.ModelName;
        live.Swapped += (_, next) => RecordVersion(next.Manifest);
        if (live.TryAcquire(out ModelLease lease))
        {
            using (lease)
            {
                RecordVersion(lease.Model.Manifest);
            }
        }
    }

    public StatusSnapshot Snapshot()
    {
        ModelManifest? manifest = null;
        if (live.TryAcquire(out ModelLease lease))
        {
            using (lease)
            {
                manifest = lease.Model.Manifest;
            }
        }

        // Taken outside the history lock, so that this lock is never held while waiting for the learner's status lock.
        LearnerSummary? learnerSummary = learner is null ? null : LearnerSummary.From(LearnerState.Capture(learner));
        DateTimeOffset now = time.GetUtcNow();
        CertificateSummary[] certificateSummaries = certificates is null
            ? []
            : certificates.Certificates.Select(certificate => CertificateSummary.From(certificate, now)).ToArray();
        lock (historyLock)
        {
            return new StatusSnapshot
            {
                Model = modelName,
                Version = manifest?.Version,
                ParentVersion = manifest?.ParentVersion,
                CreatedAt = manifest?.CreatedAt,
                ExamplesTrained = manifest?.ExamplesTrained ?? 0,
                Evaluation = manifest?.Evaluation,
                Versions = versions.ToArray(),
                Traffic = traffic.ToArray(),
                Learner = learnerSummary,
                Certificates = certificateSummaries,
                GeneratedAt = now,
            };
        }
    }

    /// <summary>Takes one traffic sample now; the background loop calls this every <see cref="SampleInterval"/>.</summary>
    public async Task SampleAsync(CancellationToken cancellation)
    {
        string text = await MetricsText.CollectAsync(cancellation).ConfigureAwait(false);
        var counts = new Counts(
            time.GetTimestamp(),
            MetricsText.SumBy(text, RequestsMetric, "outcome", ("model", modelName)),
            MetricsText.SumBy(text, DurationBucketMetric, "le", ("model", modelName)));
        Counts? before = previous;
        previous = counts;
        if (before is null)
        {
            return;
        }

        TrafficPoint point = Difference(before, counts);
        lock (historyLock)
        {
            Append(traffic, point);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(SampleInterval, time);
        do
        {
            try
            {
                await SampleAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                // A stop during a sample, also one that ends a failed start, is not a failure of the sampler.
                return;
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                LogSampleFailed(logger, exception);
            }
        }
        while (await WaitAsync(timer, stoppingToken).ConfigureAwait(false));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken cancellation)
    {
        try
        {
            return await timer.WaitForNextTickAsync(cancellation).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private void RecordVersion(ModelManifest manifest)
    {
        EvaluationSummary? evaluation = manifest.Evaluation;
        var accuracyByTask = new Dictionary<int, double>();
        double? averageAccuracy = null;
        if (evaluation is not null && evaluation.AccuracyMatrix.Count > 0)
        {
            averageAccuracy = evaluation.AverageAccuracy;
            IReadOnlyList<double> lastRow = evaluation.AccuracyMatrix[^1];
            for (int column = 0; column < lastRow.Count && column < evaluation.Tasks.Count; column++)
            {
                accuracyByTask[evaluation.Tasks[column]] = lastRow[column];
            }
        }

        var point = new VersionPoint(manifest.Version, time.GetUtcNow(), averageAccuracy, accuracyByTask);
        lock (historyLock)
        {
            Append(versions, point);
        }
    }

    private TrafficPoint Difference(Counts before, Counts after)
    {
        double seconds = Math.Max(time.GetElapsedTime(before.Timestamp, after.Timestamp).TotalSeconds, 1e-3);
        double requests = Delta(before.ByOutcome, after.ByOutcome, key => true);
        double failed = Delta(before.ByOutcome, after.ByOutcome, outcome => outcome != "ok");
        var buckets = after.Buckets
            .Select(pair => (Bound: ParseBound(pair.Key), Count: pair.Value - before.Buckets.GetValueOrDefault(pair.Key)))
            .OrderBy(bucket => bucket.Bound)
            .ToArray();
        return new TrafficPoint(
            time.GetUtcNow(),
            requests / seconds,
            requests > 0 ? failed / requests : 0,
            HistogramQuantile.Estimate(0.5, buckets),
            HistogramQuantile.Estimate(0.99, buckets));
    }

    private static double Delta(Dictionary<string, double> before, Dictionary<string, double> after, Func<string, bool> include) =>
        after.Where(pair => include(pair.Key)).Sum(pair => Math.Max(0, pair.Value - before.GetValueOrDefault(pair.Key)));

    private static double ParseBound(string le) =>
        le == "+Inf" ? double.PositiveInfinity : double.Parse(le, NumberStyles.Float, CultureInfo.InvariantCulture);

    private static void Append<T>(Queue<T> queue, T point)
    {
        queue.Enqueue(point);
        while (queue.Count > MaxPoints)
        {
            queue.Dequeue();
        }
    }

    [LoggerMessage(EventId = 510, Level = LogLevel.Warning, Message = "Could not sample inference metrics for the status page")]
    private static partial void LogSampleFailed(ILogger logger, Exception exception);

    private sealed record Counts(long Timestamp, Dictionary<string, double> ByOutcome, Dictionary<string, double> Buckets);
}
