using ContinualServe.Server.Cli;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

public sealed class FailedServiceExitTests
{
    [Fact(Timeout = 30_000)]
    public async Task FailedServiceGivesNonZeroExit()
    {
        int exitCode = await RoleCommandLine.RunAsync(() => Build<FailingService>(), CancellationToken.None);

        exitCode.ShouldBe(RoleCommandLine.ServiceFailedExitCode);
    }

    [Fact(Timeout = 30_000)]
    public async Task StoppedServiceGivesZeroExit()
    {
        int exitCode = await RoleCommandLine.RunAsync(() => Build<StoppingService>(), CancellationToken.None);

        exitCode.ShouldBe(0);
    }

    [Fact(Timeout = 30_000)]
    public async Task FailedServiceIsStillLogged()
    {
        var captured = new CapturingLoggerProvider();

        int exitCode = await RoleCommandLine.RunAsync(() => Build<FailingService>(captured), CancellationToken.None);

        exitCode.ShouldBe(RoleCommandLine.ServiceFailedExitCode);
        captured.Entries.ShouldContain(
            entry => entry.Level == LogLevel.Critical && entry.Exception != null && entry.Exception.Message == "the download scheme is not supported",
            "the host must still log a background service's failure with its exception");
    }

    private static WebApplication Build<TService>(ILoggerProvider? logs = null)
        where TService : class, IHostedService
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(["--urls", "http://127.0.0.1:0"]);
        builder.Logging.ClearProviders();
        builder.Logging.ReportHostFailuresOnce();
        if (logs is not null)
        {
            builder.Logging.AddProvider(logs);
        }

        builder.Services.AddHostedService<TService>();
        return builder.Build();
    }

    // Keeps every log entry in memory, with its level and exception.
    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public System.Collections.Concurrent.ConcurrentQueue<(LogLevel Level, Exception? Exception)> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new CapturingLogger(Entries);

        public void Dispose()
        {
        }

        private sealed class CapturingLogger(System.Collections.Concurrent.ConcurrentQueue<(LogLevel Level, Exception? Exception)> entries) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                entries.Enqueue((logLevel, exception));
        }
    }

    // Fails once the host runs, as a replica's subscriber does when a download throws an exception it does not expect.
    private sealed class FailingService : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            await Task.Delay(100, stoppingToken);
            throw new InvalidOperationException("the download scheme is not supported");
        }
    }

    // Asks the host to stop, as Ctrl-C does, and ends without an error.
    private sealed class StoppingService(IHostApplicationLifetime lifetime) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            await Task.Delay(100, stoppingToken);
            lifetime.StopApplication();
        }
    }
}
