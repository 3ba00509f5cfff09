using System.Net;
using System.Net.Sockets;
using ContinualServe.Server.Demo;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Spectre.Console;
using Xunit;

namespace ContinualServe.Server.Tests.Demo;

/// <summary>A demo whose server cannot bind its address, as when another process listens there.</summary>
public sealed class DemoStartFailureTests : IDisposable
{
    private readonly string runs = Directory.CreateTempSubdirectory("continualserve-runs-").FullName;

    public void Dispose() => Directory.Delete(runs, recursive: true);

    [Fact(Timeout = 60_000)]
    public async Task FailedBindKeepsOlderRuns()
    {
        string[] completed = [CreateRun(1), CreateRun(2)];
        using var occupant = new TcpListener(IPAddress.Loopback, 0);
        occupant.Start();
        var output = new StringWriter();

        IOException failure = await Should.ThrowAsync<IOException>(() => RunDemoAsync(occupant, runs, output, keepRuns: 2));

        failure.Message.ShouldStartWith("Failed to bind");
        Directory.GetDirectories(runs).Order(StringComparer.Ordinal).ShouldBe(completed, ignoreOrder: false, output.ToString());
        output.ToString().ShouldNotContain("Deleted");
    }

    [Fact(Timeout = 60_000)]
    public async Task FailedBindRemovesRunsItCreated()
    {
        string created = Path.Combine(runs, "runs");
        using var occupant = new TcpListener(IPAddress.Loopback, 0);
        occupant.Start();

        await Should.ThrowAsync<IOException>(() => RunDemoAsync(occupant, created, new StringWriter()));

        Directory.Exists(created).ShouldBeFalse("a failed first start must not leave an empty runs directory");
    }

    [Fact(Timeout = 60_000)]
    public async Task FailedBindKeepsEmptyRunsGiven()
    {
        using var occupant = new TcpListener(IPAddress.Loopback, 0);
        occupant.Start();

        await Should.ThrowAsync<IOException>(() => RunDemoAsync(occupant, runs, new StringWriter()));

        Directory.Exists(runs).ShouldBeTrue("the demo deletes only a runs directory that it created");
        Directory.GetFileSystemEntries(runs).ShouldBeEmpty();
    }

    // Runs the demo on the port that occupant holds, so that its server fails to bind.
    private static Task<DemoResult> RunDemoAsync(TcpListener occupant, string runsDirectory, StringWriter output, int keepRuns = 5)
    {
        var options = new DemoOptions
        {
            DataDirectory = Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist"),
            Urls = $"http://127.0.0.1:{((IPEndPoint)occupant.LocalEndpoint).Port}",
            RunsDirectory = runsDirectory,
            Device = "cpu",
            KeepRuns = keepRuns,
            Clients = 0,
        };
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        return new DemoRunner(options, console, NullLoggerFactory.Instance).RunAsync(CancellationToken.None);
    }

    // A completed run directory started on the given day of December 2026.
    private string CreateRun(int day)
    {
        string path = Directory.CreateDirectory(Path.Combine(runs, DemoRunRetention.RunName(new DateTime(2026, 12, day, 10, 0, 0, DateTimeKind.Utc)))).FullName;
        File.WriteAllText(Path.Combine(path, "report.json"), "{}");
        return path;
    }
}
