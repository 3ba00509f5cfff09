using System.Net.Sockets;
using System.Text;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

/// <summary>
/// Raw-socket clients that declare a body over Server:MaxRequestBodyBytes, as clients without
/// <c>Expect: 100-continue</c> (Python's http.client among them) send it.
/// </summary>
public sealed class OversizedBodyTests : IAsyncLifetime
{
    private const int LimitBytes = 2 * 1024 * 1024;

    // The largest body that the server drains. It does not fit in the client's small send buffer, the server's
    // receive buffer and Kestrel's input buffer together, so the client's writes complete only if the server reads it.
    private const int DeclaredBytes = 2 * LimitBytes;
    private const int ClientSendBufferBytes = 16 * 1024;
    private static readonly TimeSpan ExchangeTimeout = TimeSpan.FromSeconds(10);
    private RunningServer server = null!;

    public async Task InitializeAsync() => server = await RunningServer.StartAsync(maxRequestBodyBytes: LimitBytes);

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Theory]
    [InlineData("/v2/models/test-model/infer", 413)]
    [InlineData("/v1/models/test-model:predict", 413)]
    [InlineData("/v2/models/other-model/infer", 404)]
    public async Task HeadersOnlyGetStatusWithClose(string path, int status)
    {
        string response = await ExchangeAsync(server.Client.BaseAddress!, "POST", path, sendBody: false);

        response.ShouldStartWith($"HTTP/1.1 {status} ");
        HeaderLines(response).ShouldContain("connection: close");
    }

    [Theory]
    [InlineData("/v2/models/test-model/infer")]
    [InlineData("/v1/models/test-model:predict")]
    public async Task WholeBodyThenRead413(string path)
    {
        string response = await ExchangeAsync(server.Client.BaseAddress!, "POST", path, sendBody: true);

        response.ShouldStartWith("HTTP/1.1 413 ");
        HeaderLines(response).ShouldContain("connection: close");
        response.ShouldContain("Server:MaxRequestBodyBytes");
    }

    [Fact]
    public async Task GoldenSetWholeBodyThenRead413()
    {
        await using Management.ManagementServer management = await Management.ManagementServer.StartAsync(
            versions: 1, separatePort: false, extraArguments: $"--Server:MaxRequestBodyBytes={LimitBytes}");

        string response = await ExchangeAsync(
            management.Management.BaseAddress!, "PUT", "/manage/v1/golden-set", sendBody: true, $"Authorization: Bearer {Management.ManagementServer.Token}");

        response.ShouldStartWith("HTTP/1.1 413 ");
        HeaderLines(response).ShouldContain("connection: close");
        response.ShouldContain("Server:MaxRequestBodyBytes");
    }

    /// <summary>
    /// Sends the request line and headers of a <see cref="DeclaredBytes"/> JSON body, then the whole body when
    /// <paramref name="sendBody"/> is true. Returns what the server sends until it closes the connection, or only the
    /// response headers when no body was sent.
    /// </summary>
    internal static async Task<string> ExchangeAsync(Uri baseAddress, string method, string path, bool sendBody, string? extraHeader = null)
    {
        using var deadline = new CancellationTokenSource(ExchangeTimeout);
        using var client = new TcpClient { SendBufferSize = ClientSendBufferBytes };
        await client.ConnectAsync(baseAddress.Host, baseAddress.Port, deadline.Token);
        NetworkStream stream = client.GetStream();
        string head = $"{method} {path} HTTP/1.1\r\nHost: {baseAddress.Authority}\r\nContent-Type: application/json\r\n"
            + (extraHeader is null ? string.Empty : extraHeader + "\r\n")
            + $"Content-Length: {DeclaredBytes}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head), deadline.Token);
        if (sendBody)
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(new string(' ', DeclaredBytes)), deadline.Token);
        }

        var buffer = new byte[4096];
        var received = new StringBuilder();
        for (int count = await stream.ReadAsync(buffer, deadline.Token); count > 0; count = await stream.ReadAsync(buffer, deadline.Token))
        {
            received.Append(Encoding.UTF8.GetString(buffer, 0, count));

            // Without a body, the server waits for it until its drain timeout, so the headers are enough.
            if (!sendBody && received.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                break;
            }
        }

        return received.ToString();
    }

    internal static string[] HeaderLines(string response) =>
        response.Split("\r\n\r\n")[0].Split("\r\n").Select(line => line.ToLowerInvariant()).ToArray();
}
