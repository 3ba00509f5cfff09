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
        int port = ((IPEndPoint)occupant.LocalEndpoint).Port;
        var options = new DemoOptions
        {
            DataDirectory = Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist"),
            Urls = $"http://127.0.0.1:{port}",
            RunsDirectory = runs,
            Device = "cpu",
            KeepRuns = 2,
            Clients = 0,
        };
        var output = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });

        IOException failure = await Should.ThrowAsync<IOException>(
            () => new DemoRunner(options, console, NullLoggerFactory.Instance).RunAsync(CancellationToken.None));

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

        await Should.ThrowAsync<IOException>(() => RunDemoAsync(occupant, created));

        Directory.Exists(created).ShouldBeFalse("a failed first start must not leave an empty runs directory");
    }

    [Fact(Timeout = 60_000)]
    public async Task FailedBindKeepsEmptyRunsGiven()
    {
        using var occupant = new TcpListener(IPAddress.Loopback, 0);
        occupant.Start();

        await Should.ThrowAsync<IOException>(() => RunDemoAsync(occupant, runs));

        Directory.Exists(runs).ShouldBeTrue("the demo deletes only a runs directory that it created");
        Directory.GetFileSystemEntries(runs).ShouldBeEmpty();
    }

    private static Task<DemoResult> RunDemoAsync(TcpListener occupant, string runsDirectory)
    {
        var options = new DemoOptions
        {
            DataDirectory = Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist"),
            Urls = $"http://127.0.0.1:{((IPEndPoint)occupant.LocalEndpoint).Port}",
            RunsDirectory = runsDirectory,
            Device = "cpu",
            Clients = 0,
        };
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(new StringWriter()) });
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
