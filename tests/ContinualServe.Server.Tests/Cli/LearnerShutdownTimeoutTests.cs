using ContinualServe.Server.Cli;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>
/// The host's shutdown timeout in the roles that run a learner. The learner's stop can take longer than the host's
/// default of 30 s, and a host that gives up first abandons the round being written.
/// </summary>
public sealed class LearnerShutdownTimeoutTests
{
    public static TheoryData<string> Roles => new() { "learn", "all" };

    [Theory]
    [MemberData(nameof(Roles))]
    public async Task HostOutlastsLearnerStop(string role)
    {
        await using WebApplication app = Build(role);

        TimeSpan timeout = app.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout;

        timeout.ShouldBeGreaterThan(LearnerHostedService.LongestStop);
        timeout.ShouldBe(RoleServices.LearnerShutdownTimeout);
    }

    [Theory]
    [MemberData(nameof(Roles))]
    public async Task LongerConfiguredTimeoutStays(string role)
    {
        await using WebApplication app = Build(role, "--shutdownTimeoutSeconds=120");

        app.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout.ShouldBe(TimeSpan.FromSeconds(120));
    }

    private static WebApplication Build(string role, params string[] extra)
    {
        string store = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
        string[] arguments =
        [
            "--urls", "http://127.0.0.1:0",
            "--Learner:BootstrapServers=127.0.0.1:9",
            "--Learner:StoreDirectory=" + store,
            "--Learner:Device=cpu",
            .. extra,
        ];
        return role == "learn" ? LearnCommand.Build(arguments) : AllCommand.Build(arguments);
    }
}
