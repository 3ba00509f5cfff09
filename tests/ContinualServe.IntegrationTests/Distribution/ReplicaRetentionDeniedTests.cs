using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Tests.Distribution;
using ContinualServe.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;
using Xunit.Abstractions;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>
/// A <c>continualserve serve</c> replica that keeps one version (Distribution:RetainedVersions=1) and whose oldest local
/// version cannot be deleted because the system denies it. After it installs the announced version, its retention must
/// log a warning with the path and go on, not fail the version subscriber with an unexpected error.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ReplicaRetentionDeniedTests(ITestOutputHelper testOutput) : IAsyncLifetime
{
    private readonly string root = Directory.CreateDirectory(
        Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"))).FullName;

    private readonly List<string> protectedDirectories = [];
    private ContinualServeProcess? replica;
    private WebApplication? storeApp;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (replica is not null)
        {
            testOutput.WriteLine(replica.OutputTail);
            await replica.DisposeAsync();
        }

        if (storeApp is not null)
        {
            await storeApp.DisposeAsync();
        }

        foreach (string directory in protectedDirectories)
        {
            UndeletableDirectoryFactAttribute.Unprotect(directory);
        }

        Directory.Delete(root, recursive: true);
    }

    [UndeletableDirectoryFact(Timeout = 120_000)]
    public async Task DeniedDeletionLogsWarning()
    {
        var learner = new ModelStore(Path.Combine(root, "learner"));
        for (int seed = 1; seed <= 3; seed++)
        {
            ReplicaStores.SaveVersion(learner, seed);
        }

        var local = new ModelStore(Path.Combine(root, "replica"));
        ReplicaStores.CopyVersion(learner.VersionDirectory(1), local.VersionDirectory(1));
        ReplicaStores.CopyVersion(learner.VersionDirectory(2), local.VersionDirectory(2));
        string undeletable = local.VersionDirectory(1);
        UndeletableDirectoryFactAttribute.Protect(undeletable);
        protectedDirectories.Add(undeletable);

        (storeApp, string storeUrl) = await StoreServer.StartAsync(learner);
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("model-versions", 1);
        using (var publisher = new ModelVersionPublisher(
            broker.BootstrapServers, new DistributionOptions { StoreUrl = storeUrl }, NullLogger<ModelVersionPublisher>.Instance))
        {
            learner.TryLoad(3, out ModelVersion? third).ShouldBeTrue();
            publisher.Publish(third!);
            publisher.Flush(TimeSpan.FromSeconds(10)).ShouldBe(0);
        }

        (replica, string url) = await ContinualServeProcess.StartOnAnyPortAsync("replica", root, "http", listenUrl =>
        [
            "serve", "--urls", listenUrl, "--store", local.RootDirectory, "--device", "cpu", "--bootstrap-servers", broker.BootstrapServers,
            "--Distribution:RetainedVersions=1",
        ]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        string warning = await WaitForOutputAsync("Could not delete old version 1", TimeSpan.FromSeconds(60));

        warning.ShouldContain(undeletable);
        warning.ShouldContain("denied");
        replica.OutputTail.ShouldNotContain("unexpected error");
        (await ReplicaDistributionTests.ServedVersionAsync(http, url)).ShouldBe(3, "the replica must serve the announced version");
        local.ListVersionNumbers().ShouldBe([1L, 3L], "retention must delete version 2 although version 1 stays");
    }

    // Polls the replica's output every 200 ms until a line contains text, for at most timeout, and returns that line.
    private async Task<string> WaitForOutputAsync(string text, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (!deadline.IsCancellationRequested)
        {
            replica!.HasExited.ShouldBeFalse(replica.OutputTail);
            string? line = replica.OutputTail.Split('\n').FirstOrDefault(line => line.Contains(text, StringComparison.Ordinal));
            if (line is not null)
            {
                return line;
            }

            if (replica.OutputTail.Contains("unexpected error", StringComparison.Ordinal))
            {
                break;
            }

            await Task.Delay(200, CancellationToken.None);
        }

        throw new ShouldAssertException(
            $"The replica logged no line with '{text}' before an unexpected error or within {timeout.TotalSeconds} s:\n{replica!.OutputTail}");
    }
}
