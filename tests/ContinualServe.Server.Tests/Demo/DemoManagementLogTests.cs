using ContinualServe.Server.Demo;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Demo;

/// <summary>
/// Event 441 for a server that starts without a management token: a warning for serve and all, Information for the
/// demo, which runs without the management API on purpose.
/// </summary>
public sealed class DemoManagementLogTests : IDisposable
{
    private const int ManagementDisabledEvent = 441;

    // No test sets this variable, so the management token is missing even where CONTINUALSERVE_MANAGEMENT_TOKEN is set.
    private const string UnsetTokenVariable = "CONTINUALSERVE_TEST_UNSET_MANAGEMENT_TOKEN";

    private readonly string store = Directory.CreateTempSubdirectory("continualserve-demo-store-").FullName;

    public void Dispose() => Directory.Delete(store, recursive: true);

    [Fact(Timeout = 60_000)]
    public async Task DemoLogsNoManagementWarning()
    {
        var logs = new RecordingLoggerProvider(LogLevel.Information);
        var options = new DemoOptions { Urls = "http://127.0.0.1:0", Device = "cpu" };

        await using WebApplication server = DemoRunner.BuildServer(options, store, builder => Record(builder, logs));
        await StartAndStopAsync(server);

        logs.Recorder.Entries.ShouldNotContain(entry => entry.EventId == ManagementDisabledEvent && entry.Level >= LogLevel.Warning);
        logs.Recorder.Entries.ShouldContain(entry => entry.EventId == ManagementDisabledEvent && entry.Level == LogLevel.Information);
    }

    [Fact(Timeout = 60_000)]
    public async Task ServerWithoutTokenWarns()
    {
        var logs = new RecordingLoggerProvider(LogLevel.Information);

        await using WebApplication server = ServerHost.Build(
            ["--Logging:LogLevel:Default=Warning"], "http://127.0.0.1:0", options => options.StoreDirectory = store,
            pollStore: false, configureBuilder: builder => Record(builder, logs));
        await StartAndStopAsync(server);

        logs.Recorder.Entries.ShouldContain(entry => entry.EventId == ManagementDisabledEvent && entry.Level == LogLevel.Warning);
    }

    // The provider's own filter takes precedence over Logging:LogLevel:Default, so Information entries reach it.
    private static void Record(WebApplicationBuilder builder, RecordingLoggerProvider logs)
    {
        builder.Configuration["Management:TokenEnvironmentVariable"] = UnsetTokenVariable;
        builder.Logging.AddProvider(logs);
        builder.Logging.AddFilter<RecordingLoggerProvider>(null, LogLevel.Information);
    }

    // Event 441 is logged when the host has started.
    private static async Task StartAndStopAsync(WebApplication server)
    {
        await server.StartAsync(CancellationToken.None);
        await server.StopAsync(CancellationToken.None);
    }
}
