using System.Net;
using Xunit;

namespace ContinualServe.Server.Tests.StatusPage;

/// <summary>
/// HEAD on the status page, its JSON and the OpenAPI document of the serve role: the status code and headers of GET,
/// without a body.
/// </summary>
public sealed class StatusPageHeadTests : IAsyncLifetime, IDisposable
{
    // The redirect from /ui to /ui/ is compared as it is sent, so the client does not follow it.
    private readonly HttpClient client = new(new HttpClientHandler { AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(30) };
    private RunningServer server = null!;

    public async Task InitializeAsync()
    {
        server = await RunningServer.StartAsync();
        client.BaseAddress = server.Client.BaseAddress;
    }

    public async Task DisposeAsync() => await server.DisposeAsync();

    public void Dispose() => client.Dispose();

    [Theory]
    [InlineData("ui", HttpStatusCode.Redirect, false)]
    [InlineData("ui/", HttpStatusCode.OK, true)]
    [InlineData("ui/status.js", HttpStatusCode.OK, true)]
    [InlineData("ui/status.css", HttpStatusCode.OK, true)]
    [InlineData("ui/api/status", HttpStatusCode.OK, false)]
    [InlineData("openapi/v1.json", HttpStatusCode.OK, false)]
    public async Task HeadMatchesGetWithoutBody(string path, HttpStatusCode expected, bool withContentLength)
    {
        await HeadResponses.ShouldMatchGetAsync(client, path, expected, withContentLength);
    }
}
