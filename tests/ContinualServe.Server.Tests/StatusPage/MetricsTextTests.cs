using ContinualServe.Server.StatusPage;
using Prometheus;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.StatusPage;

/// <summary>Tests of reading samples back from the Prometheus text exposition, with label values that need escaping.</summary>
public sealed class MetricsTextTests
{
    [Theory]
    [InlineData("fashion-mnist")]
    [InlineData("mnist,v2")]
    [InlineData("say \"hi\"")]
    [InlineData("back\\slash")]
    [InlineData("brace}{ = ")]
    [InlineData("line\nbreak")]
    public async Task SumByMatchesExportedLabelValue(string model)
    {
        // A registry of its own, so that the exposition contains only this test's samples.
        CollectorRegistry registry = Metrics.NewCustomRegistry();
        Counter requests = Metrics.WithCustomRegistry(registry).CreateCounter("test_requests_total", "Requests.", "model", "outcome");
        requests.WithLabels(model, "ok").Inc(3);
        requests.WithLabels(model, "bad_request").Inc(2);
        requests.WithLabels("other", "ok").Inc(7);
        using var stream = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(stream);
        string text = System.Text.Encoding.UTF8.GetString(stream.ToArray());

        Dictionary<string, double> byOutcome = MetricsText.SumBy(text, "test_requests_total", "outcome", ("model", model));

        byOutcome.GetValueOrDefault("ok").ShouldBe(3, text);
        byOutcome.GetValueOrDefault("bad_request").ShouldBe(2, text);
        byOutcome.Count.ShouldBe(2, text);
    }
}
