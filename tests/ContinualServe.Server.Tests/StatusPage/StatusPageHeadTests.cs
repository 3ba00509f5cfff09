using System.Net;
using System.Net.Sockets;
using System.Text;
using Shouldly;
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

    // HttpClient reports a Content-Length of 0 for any empty body, so the header is read as the server sends it.
    [Theory]
    [InlineData("GET")]
    [InlineData("HEAD")]
    public async Task RedirectSendsContentLengthZero(string method)
    {
        string head = await ReadResponseHeadAsync(method, "/ui");

        head.ShouldStartWith("HTTP/1.1 302 ", customMessage: head);
        head.Split("\r\n").ShouldContain("Content-Length: 0", head);
    }

    // Sends one request without a body on a new connection and returns the status line and headers of the response.
    private async Task<string> ReadResponseHeadAsync(string method, string path)
    {
        Uri address = server.Client.BaseAddress!;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var connection = new TcpClient();
        await connection.ConnectAsync(IPAddress.Loopback, address.Port, deadline.Token);
        NetworkStream stream = connection.GetStream();
        string request = $"{method} {path} HTTP/1.1\r\nHost: {address.Authority}\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request), deadline.Token);

        var received = new StringBuilder();
        var buffer = new byte[4096];
        while (!received.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            int count = await stream.ReadAsync(buffer, deadline.Token);
            count.ShouldBeGreaterThan(0, $"the server closed the connection before the end of the headers: {received}");
            received.Append(Encoding.ASCII.GetString(buffer, 0, count));
        }

        string response = received.ToString();
        return response[..response.IndexOf("\r\n\r\n", StringComparison.Ordinal)];
    }
}
