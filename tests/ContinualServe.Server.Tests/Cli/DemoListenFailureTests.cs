using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>
/// Demo listen addresses that parse but that Kestrel rejects only when it starts listening, after the broker and the
/// learner have started.
/// </summary>
public sealed class DemoListenFailureTests
{
    [Theory]
    [InlineData("https://127.0.0.1:0", "The demo did not start: An https:// listen address has no certificate. The demo configures no certificate, so use an http:// address in --urls.")]
    [InlineData("http://192.0.2.1:8080", "The demo did not start: --urls names an address that is not on this machine")]
    public async Task ListenFailureExitsWithTwo(string urls, string message)
    {
        string data = Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist");

        (int exitCode, _, string standardError) = await ContinualServeProcess.RunAsync(
            ["demo", "--data", data, "--urls", urls, "--device", "cpu", "--clients", "0", "--tasks", "1"]);

        exitCode.ShouldBe(2, standardError);
        standardError.ShouldContain(message);
        standardError.ShouldNotContain("   at ");
    }
}
