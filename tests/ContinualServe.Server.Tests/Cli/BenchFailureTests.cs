using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary><c>continualserve bench</c> against a port where nothing listens, so that every request fails.</summary>
public sealed class BenchFailureTests : IDisposable
{
    private readonly string bodyFile = Path.GetTempFileName();

    public void Dispose() => File.Delete(bodyFile);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AllFailedRunReportsCause(bool json)
    {
        await File.WriteAllTextAsync(bodyFile, "{}");
        string arguments = $"bench --url http://127.0.0.1:{UnusedPort()}/v2/models/fashion-mnist/infer --body {bodyFile} --clients 1 --seconds 1 --max-requests 5"
            + (json ? " --json" : "");

        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(arguments.Split(' '));

        exitCode.ShouldBe(1, standardError);
        standardError.ShouldNotContain("Unhandled exception");
        standardError.ShouldContain("The first failed request: HttpRequestException");
        if (json)
        {
            using JsonDocument result = JsonDocument.Parse(standardOutput);
            result.RootElement.GetProperty("Succeeded").GetInt64().ShouldBe(0);
            result.RootElement.GetProperty("P50Milliseconds").ValueKind.ShouldBe(JsonValueKind.Null);
            result.RootElement.GetProperty("FirstFailure").GetString()!.ShouldStartWith("HttpRequestException");
        }
        else
        {
            standardOutput.ShouldContain("0 ok");
            standardOutput.ShouldContain("p50 n/a");
        }
    }

    // A port that was free a moment ago; nothing listens on it after the listener stops.
    private static int UnusedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
