using System.Text.Json;
using Shouldly;
using Xunit;

namespace ContinualServe.ObservabilityTests;

/// <summary>
/// Outcomes that the observed pipeline never produces must still have a series at 0 in Prometheus. rate() and increase()
/// skip a series' first sample, so a series that appeared with its first event would hide that event from every panel
/// and alert.
/// </summary>
[Collection(ObservedPipelineGroup.Name)]
public sealed class ZeroSeriesTests(ObservedPipeline pipeline)
{
    [Theory]
    [InlineData("continualserve_inference_requests_total", "outcome", "timeout")]
    [InlineData("continualserve_inference_requests_total", "outcome", "error")]
    [InlineData("continualserve_learner_examples_total", "outcome", "lost")]
    [InlineData("continualserve_model_downloads_total", "outcome", "corrupt")]
    [InlineData("continualserve_learner_checkpoints_total", "outcome", "failed")]
    [InlineData("continualserve_management_requests_total", "outcome", "store_write_failed")]
    public async Task UnseenOutcomeHasSeries(string metric, string label, string value)
    {
        JsonElement data = await pipeline.Prometheus.QueryAsync($"{metric}{{{label}=\"{value}\"}}", CancellationToken.None);

        data.GetProperty("result").GetArrayLength().ShouldBe(1, $"{metric}{{{label}=\"{value}\"}}");
    }
}
