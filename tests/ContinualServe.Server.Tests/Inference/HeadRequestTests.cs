using System.Net;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

/// <summary>
/// HEAD on the inference API's GET routes, which load balancers and health probes send: the status code and headers
/// of GET, without a body. HEAD on a POST route or an unknown path gets the headers of GET's 405 or 404.
/// </summary>
public sealed class HeadRequestTests : IAsyncLifetime
{
    private RunningServer server = null!;

    public async Task InitializeAsync() => server = await RunningServer.StartAsync();

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Theory]
    [InlineData("v2", HttpStatusCode.OK)]
    [InlineData("v2/health/live", HttpStatusCode.OK)]
    [InlineData("v2/health/ready", HttpStatusCode.OK)]
    [InlineData("v2/models/test-model", HttpStatusCode.OK)]
    [InlineData("v2/models/other-model", HttpStatusCode.NotFound)]
    [InlineData("v2/models/test-model/ready", HttpStatusCode.OK)]
    [InlineData("v2/models/other-model/ready", HttpStatusCode.NotFound)]
    [InlineData("v2/models/test-model/versions/1", HttpStatusCode.OK)]
    [InlineData("v2/models/test-model/versions/x", HttpStatusCode.BadRequest)]
    [InlineData("v2/models/test-model/versions/1/ready", HttpStatusCode.OK)]
    [InlineData("v2/models/test-model/versions/2/ready", HttpStatusCode.NotFound)]
    [InlineData("v1/models/test-model", HttpStatusCode.OK)]
    [InlineData("v1/models/other-model", HttpStatusCode.NotFound)]
    [InlineData("v1/models/test-model:predict", HttpStatusCode.MethodNotAllowed)]
    [InlineData("v2/models/test-model/infer", HttpStatusCode.MethodNotAllowed)]
    [InlineData("v3", HttpStatusCode.NotFound)]
    public async Task HeadMatchesGetWithoutBody(string path, HttpStatusCode expected)
    {
        await HeadResponses.ShouldMatchGetAsync(server.Client, path, expected);
    }

    [Fact]
    public async Task HeadReportsNotReady()
    {
        await using RunningServer empty = await RunningServer.StartAsync(versions: 0);

        await HeadResponses.ShouldMatchGetAsync(empty.Client, "v2/health/ready", HttpStatusCode.ServiceUnavailable);
        await HeadResponses.ShouldMatchGetAsync(empty.Client, "v2/models/test-model/ready", HttpStatusCode.ServiceUnavailable);
        await HeadResponses.ShouldMatchGetAsync(empty.Client, "v1/models/test-model", HttpStatusCode.ServiceUnavailable);
    }
}
