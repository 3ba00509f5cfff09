using System.Net;
using System.Net.Sockets;
using ContinualServe.Server.Hosting;
using ContinualServe.Server.Management;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

public sealed class ListenAddressClashTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-address-clash-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Theory]
    [InlineData("http://127.0.0.1:8080", "http://127.0.0.1:8080", true)]
    [InlineData("http://127.0.0.1:8080", "https://127.0.0.1:8080", true)]
    [InlineData("http://0.0.0.0:8080", "http://127.0.0.1:8080", true)]
    [InlineData("http://*:8080", "http://10.0.0.5:8080", true)]
    [InlineData("http://+:8080", "http://10.0.0.5:8080", true)]
    [InlineData("http://[::]:8080", "http://127.0.0.1:8080", true)]
    [InlineData("http://localhost:8080", "http://127.0.0.1:8080", true)]
    [InlineData("http://[::1]:8080", "http://LOCALHOST:8080", true)]
    [InlineData("http://127.0.0.1:8080", "http://127.0.0.1:8082", false)]
    [InlineData("http://127.0.0.1:8080", "http://10.0.0.5:8080", false)]
    [InlineData("http://127.0.0.1:0", "http://127.0.0.1:0", false)]
    [InlineData("not a url", "http://127.0.0.1:8080", false)]
    public void OverlapMatchesKestrelBinding(string first, string second, bool expected) =>
        ListenAddressClash.Overlap(first, second).ShouldBe(expected);

    [Fact(Timeout = 60_000)]
    public async Task SameAddressExitsTwo()
    {
        string address = "http://127.0.0.1:" + FreePort();

        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(
            ["serve", "--urls", address, "--management-urls", address, "--store", Path.Combine(directory, "models"), "--device", "cpu"]);

        string output = standardOutput + standardError;
        exitCode.ShouldBe(2, output);
        output.ShouldContain("--urls (urls) and --management-urls (Management:Urls) both contain " + address);
        output.ShouldNotContain("address already in use");
    }

    [Fact(Timeout = 60_000)]
    public async Task SharedPortInListExitsTwo()
    {
        string port = FreePort();

        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(
            ["serve", "--urls", "http://127.0.0.1:0;http://0.0.0.0:" + port, "--management-urls", "http://127.0.0.1:" + port,
                "--store", Path.Combine(directory, "models"), "--device", "cpu"]);

        string output = standardOutput + standardError;
        exitCode.ShouldBe(2, output);
        output.ShouldContain($"contain http://0.0.0.0:{port} and http://127.0.0.1:{port}, which share a port");
    }

    [Theory]
    [InlineData("http://127.0.0.1:0")]
    [InlineData("http://127.0.0.1:8082;http://*:0")]
    public void ManagementPortZeroRejected(string managementUrls)
    {
        InvalidConfigurationException exception = Should.Throw<InvalidConfigurationException>(
            () => ListenAddressClash.ThrowIfAny("http://127.0.0.1:8080", managementUrls));

        exception.Message.ShouldContain("port 0 is not supported for the management listener");
        exception.Message.ShouldContain("Give an explicit port");
    }

    // Port 0 stays allowed for the inference listener, where nothing depends on the port before the start.
    [Fact]
    public void InferencePortZeroAccepted() =>
        Should.NotThrow(() => ListenAddressClash.ThrowIfAny("http://127.0.0.1:0", "http://127.0.0.1:8082"));

    [Fact(Timeout = 60_000)]
    public async Task ManagementPortZeroExitsTwo()
    {
        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(
            ["serve", "--urls", "http://127.0.0.1:0", "--management-urls", "http://127.0.0.1:0",
                "--store", Path.Combine(directory, "models"), "--device", "cpu"],
            new Dictionary<string, string> { ["CONTINUALSERVE_MANAGEMENT_TOKEN"] = "port-zero-test-token-0123456789" });

        string output = standardOutput + standardError;
        exitCode.ShouldBe(2, output);
        output.ShouldContain("--management-urls (Management:Urls) contains http://127.0.0.1:0, but port 0 is not supported for the management listener");
        output.ShouldNotContain("Unhandled exception");
    }

    private static string FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }
}
