using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;
using ContinualServe.Server.Tests.Distribution;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;
using Xunit.Abstractions;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>
/// A <c>continualserve serve</c> replica, as a child process, whose download of version 1 stalls in the weights when
/// version 2 is announced.
/// </summary>
public sealed class ReplicaCancelTests(ITestOutputHelper testOutput)
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan FollowTimeout = TimeSpan.FromSeconds(30);

    // The store holds back version 1's weights for 2 minutes, as long as the default Distribution:DownloadTimeout, so
    // without the cancellation the replica would serve version 2 only after the download of version 1 timed out.
    [Fact(Timeout = 180_000)]
    public async Task NewerVersionCancelsStalledDownload()
    {
        using var temporary = new TemporaryDirectory();
        var learner = new ModelStore(Path.Combine(temporary.Path, "learner"));
        ReplicaStores.SaveVersion(learner, seed: 1);
        ReplicaStores.SaveVersion(learner, seed: 2);
        string replicaStore = Path.Combine(temporary.Path, "replica");
        var stall = new StoreServer.StalledWeights(version: 1);
        (WebApplication store, string storeUrl) = await StoreServer.StartStallingAsync(learner, stall);
        await using WebApplication storeScope = store;
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("model-versions", 1);
        var publisherOptions = new DistributionOptions { StoreUrl = storeUrl };
        using var publisher = new ModelVersionPublisher(broker.BootstrapServers, publisherOptions, NullLogger<ModelVersionPublisher>.Instance);
        Publish(publisher, learner, 1);

        (ContinualServeProcess replica, string url) = await ContinualServeProcess.StartOnAnyPortAsync(
            "replica", temporary.Path, "http", listenUrl =>
            ["serve", "--urls", listenUrl, "--store", replicaStore, "--device", "cpu", "--bootstrap-servers", broker.BootstrapServers]);
        await using ContinualServeProcess replicaScope = replica;
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        try
        {
            Task requested = await Task.WhenAny(stall.Requested.Task, Task.Delay(StartTimeout));
            requested.ShouldBe(stall.Requested.Task, "the replica did not request the weights of version 1 within 60 s");

            Publish(publisher, learner, 2);
            long? served = await WaitForServedVersionAsync(http, replica, url, expected: 2);
            Task aborted = await Task.WhenAny(stall.Aborted.Task, Task.Delay(FollowTimeout));

            served.ShouldBe(2, "the replica did not serve version 2 within 30 s of its announcement");
            aborted.ShouldBe(stall.Aborted.Task, "the replica did not close its stalled request for version 1's weights");
            replica.OutputTail.ShouldContain("Cancelled the download of version 1 and deleted its partial files");
            new ModelStore(replicaStore).ListVersionNumbers().ShouldBe([2L]);
            Directory.GetDirectories(replicaStore, ".download-*").ShouldBeEmpty();
        }
        finally
        {
            testOutput.WriteLine(replica.OutputTail);
        }
    }

    private static void Publish(ModelVersionPublisher publisher, ModelStore learner, long number)
    {
        learner.TryLoad(number, out ModelVersion? version).ShouldBeTrue();
        publisher.Publish(version!);
        publisher.Flush(TimeSpan.FromSeconds(10)).ShouldBe(0);
    }

    // Polls the version that computes inference responses until it is expected or FollowTimeout passes, and returns
    // the last one.
    private static async Task<long?> WaitForServedVersionAsync(
        HttpClient http, ContinualServeProcess replica, string url, long expected)
    {
        DateTime deadline = DateTime.UtcNow + FollowTimeout;
        long? served = await ReplicaDistributionTests.ServedVersionAsync(http, url);
        while (served != expected && DateTime.UtcNow < deadline)
        {
            replica.HasExited.ShouldBeFalse(replica.OutputTail);
            await Task.Delay(200);
            served = await ReplicaDistributionTests.ServedVersionAsync(http, url);
        }

        return served;
    }
}
