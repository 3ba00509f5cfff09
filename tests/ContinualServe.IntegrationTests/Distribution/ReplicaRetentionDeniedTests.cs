using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Tests.Distribution;
using ContinualServe.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

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
            SaveVersion(learner, seed);
        }

        var local = new ModelStore(Path.Combine(root, "replica"));
        CopyVersion(learner.VersionDirectory(1), local.VersionDirectory(1));
        CopyVersion(learner.VersionDirectory(2), local.VersionDirectory(2));
        string undeletable = local.VersionDirectory(1);
        UndeletableDirectoryFactAttribute.Protect(undeletable);
        protectedDirectories.Add(undeletable);

        string storeUrl = await StartStoreAsync(learner);
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

    private static void SaveVersion(ModelStore store, int seed)
    {
        torch.manual_seed(seed);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(new ModelSpec());
        store.Save(new ModelSpec(), module, new ModelManifest());
    }

    private static void CopyVersion(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (string file in Directory.EnumerateFiles(source))
        {
            File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
        }
    }

    private async Task<string> StartStoreAsync(ModelStore store)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddDistributionOptions();
        storeApp = builder.Build();
        storeApp.MapModelStoreApi(() => store);
        await storeApp.StartAsync();
        return storeApp.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
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
