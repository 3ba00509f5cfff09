using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>
/// Durations that TimeSpan cannot parse stop each role with exit code 2 and a message that gives the duration format,
/// both for settings read while the host is built and for those checked after it.
/// </summary>
public sealed class DurationSettingExitTests : IDisposable
{
    private const string FormatAdvice = "Durations are written [d.]hh:mm:ss[.fraction], for example 00:00:00.002 for 2 ms";

    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-durations-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Theory]
    [InlineData("learn", "Learner:SessionTimeout")]
    [InlineData("learn", "Learner:IdleRoundDelay")]
    [InlineData("learn", "Distribution:RetryDelay")]
    [InlineData("all", "Learner:SessionTimeout")]
    [InlineData("all", "Server:StorePollInterval")]
    [InlineData("serve", "Batching:RequestTimeout")]
    [InlineData("serve", "Distribution:DownloadTimeout")]
    public async Task BadDurationExitsWithTwo(string role, string key)
    {
        string store = Path.Combine(directory, "models");
        List<string> arguments = [role, "--urls", "http://127.0.0.1:0", "--store", store, "--device", "cpu", $"--{key}=2ms"];
        if (role != "serve")
        {
            // Nothing listens on port 1, and the start stops before any connection.
            arguments.AddRange(["--bootstrap-servers", "127.0.0.1:1"]);
        }

        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(arguments);

        exitCode.ShouldBe(2, standardOutput + standardError);
        standardError.ShouldContain($"Invalid durations: '{key}' is '2ms'. {FormatAdvice}");
        standardError.ShouldNotContain("System.TimeSpan");
    }
}
