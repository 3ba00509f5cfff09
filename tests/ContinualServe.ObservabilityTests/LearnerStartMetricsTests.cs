using System.Text.Json;
using ContinualServe.Learner;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.ObservabilityTests;

/// <summary>
/// Learner metrics that the alert rules need from a learner's start. The tests share the observed pipeline's collection
/// because the metrics are process-wide and the pipeline's learner writes them too.
/// </summary>
[Collection(ObservedPipelineGroup.Name)]
public sealed class LearnerStartMetricsTests(ObservedPipeline pipeline)
{
    [Fact]
    public async Task RejectedDecisionExportedAtZero()
    {
        // increase() skips a series' first sample, so the rejection alert needs the series before the first rejection.
        JsonElement data = await pipeline.Prometheus.QueryAsync("continualserve_promotions_total{decision=\"rejected\"}", CancellationToken.None);

        data.GetProperty("result").GetArrayLength().ShouldBe(1);
    }

    [Fact]
    public void LastVersionTimestampSetAtStart()
    {
        // A learner that restarts has published nothing yet in this process, so without a value at start the
        // no-new-version alert would read 0 and report an age of decades.
        string store = Directory.CreateTempSubdirectory("continualserve-learner-start-").FullName;
        ContinualServeMetrics.LearnerLastVersionTimestamp.Set(0);
        try
        {
            using var learner = new ContinualLearner(new LearnerOptions
            {
                // Nothing listens on port 9, and the learner thread retries in the background while the test reads the gauge.
                BootstrapServers = "127.0.0.1:9",
                Topic = "learner-start",
                GroupId = "learner-start",
                StoreDirectory = store,
                Device = "cpu",
            }, NullLoggerFactory.Instance);
            ModelVersion version = learner.Start();
            double value = ContinualServeMetrics.LearnerLastVersionTimestamp.Value;
            learner.Stop(TimeSpan.FromSeconds(30));

            value.ShouldBe(version.Manifest.CreatedAt.ToUnixTimeMilliseconds() / 1000.0);
        }
        finally
        {
            Directory.Delete(store, recursive: true);
        }
    }
}
