using System.Globalization;
using System.Text.RegularExpressions;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Tests.Distribution;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;
using Xunit.Abstractions;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>
/// A <c>continualserve serve</c> replica whose store is a tmpfs with room for one version of the default model but not
/// two, so the announced second version fails with ENOSPC on every attempt.
/// </summary>
public sealed class ReplicaVolumeFullTests(ITestOutputHelper testOutput) : IAsyncLifetime
{
    private readonly string root = Directory.CreateDirectory(
        Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"))).FullName;

    private ContinualServeProcess? replica;
    private WebApplication? storeApp;
    private bool mounted;

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

        if (mounted)
        {
            TmpfsFactAttribute.Run("umount", Path.Combine(root, "replica"));
        }

        Directory.Delete(root, recursive: true);
    }

    [TmpfsFact(Timeout = 120_000)]
    public async Task FullVolumeLoggedOncePerVersion()
    {
        var learner = new ModelStore(Path.Combine(root, "learner"));
        ReplicaStores.SaveVersion(learner, seed: 1);
        ReplicaStores.SaveVersion(learner, seed: 2);
        long weightsBytes = new FileInfo(Path.Combine(learner.VersionDirectory(1), ModelStore.WeightsFileName)).Length;
        string volume = MountReplicaVolume(sizeBytes: weightsBytes * 3 / 2);
        ReplicaStores.CopyVersion(learner.VersionDirectory(1), Path.Combine(volume, Path.GetFileName(learner.VersionDirectory(1))));
        (storeApp, string storeUrl) = await StoreServer.StartAsync(learner);
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("model-versions", 1);
        using (var publisher = new ModelVersionPublisher(
            broker.BootstrapServers, new DistributionOptions { StoreUrl = storeUrl }, NullLogger<ModelVersionPublisher>.Instance))
        {
            learner.TryLoad(2, out ModelVersion? second).ShouldBeTrue();
            publisher.Publish(second!);
            publisher.Flush(TimeSpan.FromSeconds(10)).ShouldBe(0);
        }

        (replica, string url) = await ContinualServeProcess.StartOnAnyPortAsync("replica", root, "http", listenUrl =>
        [
            "serve", "--urls", listenUrl, "--store", volume, "--device", "cpu", "--bootstrap-servers", broker.BootstrapServers,
            "--Distribution:RetryDelay=00:00:00.200", "--Distribution:MaxRetryDelay=00:00:00.500",
        ]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        double failed = await WaitForFailedDownloadsAsync(http, url, minimum: 3);

        string[] reports = replica.OutputTail.Split('\n').Where(line => line.Contains("Version 2 does not fit in", StringComparison.Ordinal)).ToArray();
        failed.ShouldBeGreaterThanOrEqualTo(3, "the replica did not count three failed downloads of version 2");
        reports.Length.ShouldBe(1, "the full volume must be logged once for version 2, not once per attempt");
        reports[0].ShouldContain($"it needs {weightsBytes} bytes");
        Regex.IsMatch(reports[0], @"and \d+ bytes are free").ShouldBeTrue(reports[0]);
        (await ReplicaDistributionTests.ServedVersionAsync(http, url)).ShouldBe(1, "the replica must keep serving version 1");
        new ModelStore(volume).ListVersionNumbers().ShouldBe([1L], "the version the replica serves must stay");
        Directory.GetDirectories(volume, ".download-*").ShouldBeEmpty();
    }

    private string MountReplicaVolume(long sizeBytes)
    {
        string volume = Directory.CreateDirectory(Path.Combine(root, "replica")).FullName;
        (int exitCode, string error) = TmpfsFactAttribute.Run("mount", "-t", "tmpfs", "-o", $"size={sizeBytes}", "tmpfs", volume);
        exitCode.ShouldBe(0, error);
        mounted = true;
        return volume;
    }

    // Polls the replica's failed-download counter until it reaches minimum, for at most 60 s, and returns the last value.
    private async Task<double> WaitForFailedDownloadsAsync(HttpClient http, string url, double minimum)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        double count = 0;
        while (!deadline.IsCancellationRequested && count < minimum)
        {
            await Task.Delay(200, CancellationToken.None);
            replica!.HasExited.ShouldBeFalse(replica.OutputTail);
            try
            {
                string metrics = await http.GetStringAsync(new Uri(url + "/metrics"));
                Match match = Regex.Match(metrics, "^continualserve_model_downloads_total\\{outcome=\"failed\"\\} (\\S+)$", RegexOptions.Multiline);
                count = match.Success ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
        }

        return count;
    }
}
