using ContinualServe.Learner.Kafka;
using ContinualServe.Model.Store;
using Shouldly;
using Xunit;
using Xunit.Abstractions;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>
/// A learner whose newest version became corrupt while it was stopped, with real child processes of the built
/// executable: replicas follow the newest intact version it announces at its restart.
/// </summary>
public sealed class WithdrawnVersionTests(ITestOutputHelper testOutput) : ChildProcessTests(testOutput)
{
    // The learner announces version 2 and stops. Version 2's weights are then truncated, and the restarted learner
    // announces version 1. A replica that starts afterwards serves version 1 and does not download the corrupt version 2.
    [Fact]
    public async Task NewReplicaServesNewestIntactVersion()
    {
        string learnerStore = Path.Combine(Root, "learner");
        var store = new ModelStore(learnerStore);
        ReplicaStores.SaveVersion(store, seed: 1);
        ReplicaStores.SaveVersion(store, seed: 2);
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(ReplicaDistributionTests.ExampleTopic, 1);
        broker.CreateTopic(ReplicaDistributionTests.ExampleTopic + ".dlq", 1);
        broker.CreateTopic("model-versions", 1);
        string[] LearnerArguments(string listenUrl) =>
        [
            "learn", "--urls", listenUrl, "--bootstrap-servers", broker.BootstrapServers,
            "--topic", ReplicaDistributionTests.ExampleTopic, "--store", learnerStore, "--device", "cpu", "--store-url", listenUrl,
        ];
        (ContinualServeProcess first, string learnerUrl) = await ContinualServeProcess.StartOnFreePortAsync(
            "learner", Root, "http", LearnerArguments);
        Processes.Add(first);
        (await WaitForOutputAsync(first, "Announced version 2 ")).ShouldBeTrue("the first learner did not announce version 2");
        await first.DisposeAsync();
        Processes.Remove(first);

        string weights = Path.Combine(store.VersionDirectory(2), ModelStore.WeightsFileName);
        await using (var stream = new FileStream(weights, FileMode.Open, FileAccess.Write))
        {
            stream.SetLength(stream.Length / 2);
        }

        // NOTE: the restart reuses the first learner's port, which another socket could take after the kill.
        ContinualServeProcess restarted = ContinualServeProcess.Start("learner-restarted", Root, LearnerArguments(learnerUrl));
        Processes.Add(restarted);
        (await WaitForOutputAsync(restarted, "Announced version 1 ")).ShouldBeTrue("the restarted learner did not announce version 1");
        (ContinualServeProcess replica, string replicaUrl) = await ContinualServeProcess.StartOnAnyPortAsync("replica", Root, "http", listenUrl =>
        [
            "serve", "--urls", listenUrl, "--store", Path.Combine(Root, "replica"), "--device", "cpu",
            "--bootstrap-servers", broker.BootstrapServers,
            "--Distribution:RetryDelay=00:00:00.200", "--Distribution:MaxRetryDelay=00:00:01",
        ]);
        Processes.Add(replica);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };

        (await WaitForServedVersionAsync(http, replicaUrl)).ShouldBe(1);
        restarted.OutputTail.ShouldContain("although the store saved versions up to 2");
        (await WaitForOutputAsync(replica, "replaces version 2")).ShouldBeTrue("the replica did not log why it serves version 1");
        replica.OutputTail.ShouldNotContain("Ignoring version 1");
        replica.OutputTail.ShouldNotContain("is corrupt and was rejected");
    }

    private static async Task<bool> WaitForOutputAsync(ContinualServeProcess process, string text)
    {
        using var deadline = new CancellationTokenSource(StartTimeout);
        while (!deadline.IsCancellationRequested && !process.OutputTail.Contains(text, StringComparison.Ordinal))
        {
            await Task.Delay(200, CancellationToken.None);
        }

        return process.OutputTail.Contains(text, StringComparison.Ordinal);
    }

    // Polls until the server serves a version, for at most StartTimeout, and returns it, or null when none was served.
    private async Task<long?> WaitForServedVersionAsync(HttpClient http, string url)
    {
        using var deadline = new CancellationTokenSource(StartTimeout);
        while (!deadline.IsCancellationRequested)
        {
            if (await ReplicaDistributionTests.ServedVersionAsync(http, url) is long version)
            {
                return version;
            }

            Processes.ShouldAllBe(process => !process.HasExited, "a process exited before the replica served a version");
            await Task.Delay(200, CancellationToken.None);
        }

        return null;
    }
}
