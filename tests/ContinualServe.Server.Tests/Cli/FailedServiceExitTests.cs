using ContinualServe.Server.Cli;
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

    private static WebApplication Build<TService>()
        where TService : class, IHostedService
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(["--urls", "http://127.0.0.1:0"]);
        builder.Logging.ClearProviders();
        builder.Services.AddHostedService<TService>();
        return builder.Build();
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
