using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Inference;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

public sealed class InferenceMetricsTests
{
    // Metrics are process-wide, so each test counts under a model name of its own.
    [Fact]
    public void LatencyLeavesOutTurnedAwayRequests()
    {
        string model = "latency-" + Guid.NewGuid().ToString("N");
        string[] turnedAway = ["rejected", "unavailable", "bad_request", "too_large", "not_found", "aborted"];
        foreach (string outcome in turnedAway)
        {
            InferenceApi.RecordRequest(model, outcome, TimeSpan.FromMilliseconds(0.05));
        }

        ContinualServeMetrics.InferenceDuration.WithLabels(model).Count.ShouldBe(0);
        foreach (string outcome in turnedAway)
        {
            ContinualServeMetrics.InferenceRequests.WithLabels(model, outcome).Value.ShouldBe(1, outcome);
        }

        InferenceApi.RecordRequest(model, "ok", TimeSpan.FromMilliseconds(3));
        InferenceApi.RecordRequest(model, "timeout", TimeSpan.FromSeconds(5));
        InferenceApi.RecordRequest(model, "error", TimeSpan.FromMilliseconds(2));

        ContinualServeMetrics.InferenceDuration.WithLabels(model).Count.ShouldBe(3);
        ContinualServeMetrics.InferenceDuration.WithLabels(model).Sum.ShouldBe(5.005, tolerance: 1e-9);
    }
}
