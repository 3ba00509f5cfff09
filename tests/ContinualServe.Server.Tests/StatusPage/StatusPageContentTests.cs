using System.Text.Json;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.StatusPage;

/// <summary>
/// The status page of a serve process whose only version was saved without an evaluation, as the untrained version 1
/// of a new store is.
/// </summary>
public sealed class StatusPageContentTests : IAsyncLifetime
{
    private RunningServer server = null!;

    public async Task InitializeAsync() => server = await RunningServer.StartAsync(versions: 1);

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Fact]
    public async Task UnevaluatedVersionHasNullAccuracy()
    {
        using JsonDocument status = JsonDocument.Parse(await server.Client.GetStringAsync("ui/api/status"));

        JsonElement point = status.RootElement.GetProperty("versions").EnumerateArray().Single();
        point.GetProperty("version").GetInt64().ShouldBe(1);
        point.GetProperty("averageAccuracy").ValueKind.ShouldBe(JsonValueKind.Null, "a version without evaluation has no accuracy, not 0");
        point.GetProperty("accuracyByTask").EnumerateObject().ShouldBeEmpty();
        status.RootElement.GetProperty("evaluation").ValueKind.ShouldBe(JsonValueKind.Null);
    }

    // The learn role serves no /ui/, so the page must not send the reader there.
    [Fact]
    public async Task NoLearnerTextNamesLearnerStatusRoute()
    {
        string html = await server.Client.GetStringAsync("ui/");

        int start = html.IndexOf("id=\"learner-none\"", StringComparison.Ordinal);
        start.ShouldBeGreaterThan(0, "the page has the paragraph for a process without a learner");
        string paragraph = html[start..html.IndexOf("</p>", start, StringComparison.Ordinal)];
        paragraph.ShouldContain("GET /learner/v1/status");
        paragraph.ShouldContain("all role");
        paragraph.ShouldNotContain("The learn and all roles run one");
    }
}
