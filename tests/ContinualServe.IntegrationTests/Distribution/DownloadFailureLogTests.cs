using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>What a replica logs while it cannot download an announced version, as a child process.</summary>
public sealed class DownloadFailureLogTests
{
    [Theory]
    [InlineData("http://127.0.0.1:9", "from http://127.0.0.1:9 failed (attempt 2): Connection refused")]
    [InlineData("", "from no store URL failed (attempt 2): Version 1 cannot be downloaded: the announcement has no valid store URL ('') and Distribution:StoreUrl is not set on this server. Start the learner with --store-url")]
    public async Task FailedDownloadLogsReasonWithoutStack(string storeUrl, string expected)
    {
        using var temporary = new TemporaryDirectory();
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("model-versions", 1);
        AnnounceVersionOne(broker.BootstrapServers, storeUrl);

        await using ContinualServeProcess replica = await StartReplicaUntilSecondAttemptAsync(temporary.Path, broker.BootstrapServers);

        replica.OutputTail.ShouldContain(expected);
        replica.OutputTail.ShouldNotContain("   at ", customMessage: "an expected download failure must not log a stack trace");
    }

    // A learner announces its newest version again at each start, so after a move of its store to another URL (such
    // as https://) the topic carries the same version under both URLs, and a replica must use the later one.
    [Fact]
    public async Task ReannouncedVersionUsesLaterStoreUrl()
    {
        using var temporary = new TemporaryDirectory();
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("model-versions", 1);
        AnnounceVersionOne(broker.BootstrapServers, "http://127.0.0.1:9", "http://127.0.0.1:10");

        await using ContinualServeProcess replica = await StartReplicaUntilSecondAttemptAsync(temporary.Path, broker.BootstrapServers);

        replica.OutputTail.ShouldContain("from http://127.0.0.1:10 failed (attempt 2)");
        replica.OutputTail.ShouldNotContain("from http://127.0.0.1:9 failed");
    }

    [Fact(Timeout = 90_000)]
    public async Task NewStoreUrlRestartsBackoff()
    {
        using var temporary = new TemporaryDirectory();
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("model-versions", 1);
        AnnounceVersionOne(broker.BootstrapServers, "http://127.0.0.1:9");
        await using ContinualServeProcess replica = ContinualServeProcess.Start("replica", temporary.Path,
            "serve", "--urls", "http://127.0.0.1:0", "--store", Path.Combine(temporary.Path, "replica"), "--device", "cpu",
            "--bootstrap-servers", broker.BootstrapServers, "--Distribution:RetryDelay=00:00:00.500", "--Distribution:MaxRetryDelay=00:05:00");
        // Attempt 4 waits 4 s for attempt 5, and the backoff doubles from there.
        (await WaitForOutputAsync(replica, "from http://127.0.0.1:9 failed (attempt 4)", TimeSpan.FromSeconds(30))).ShouldBeTrue(replica.OutputTail);

        AnnounceVersionOne(broker.BootstrapServers, "http://127.0.0.1:10");

        (await WaitForOutputAsync(replica, "from http://127.0.0.1:10 failed (attempt 1)", TimeSpan.FromSeconds(3))).ShouldBeTrue(replica.OutputTail);
    }

    // Waits, at most timeout, until the replica's output contains text. Returns false when it did not.
    private static async Task<bool> WaitForOutputAsync(ContinualServeProcess replica, string text, TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (!replica.OutputTail.Contains(text, StringComparison.Ordinal) && DateTime.UtcNow < deadline && !replica.HasExited)
        {
            await Task.Delay(100);
        }

        return replica.OutputTail.Contains(text, StringComparison.Ordinal);
    }

    // Announces version 1 of fashion-mnist once for each store URL, in order, with weights that no store serves.
    private static void AnnounceVersionOne(string bootstrapServers, params string[] storeUrls)
    {
        using var publisher = new ModelVersionPublisher(bootstrapServers, new DistributionOptions(), NullLogger<ModelVersionPublisher>.Instance);
        foreach (string storeUrl in storeUrls)
        {
            publisher.Publish(new ModelVersionAnnouncement
            {
                ModelName = "fashion-mnist",
                Version = 1,
                WeightsSha256 = new string('0', 64),
                WeightsBytes = 1,
                CreatedAt = DateTimeOffset.UtcNow,
                StoreUrl = storeUrl,
            });
        }

        publisher.Flush(TimeSpan.FromSeconds(10));
    }

    // Starts a replica that follows the version topic and waits, at most 30 s, until it logs a second download attempt.
    private static async Task<ContinualServeProcess> StartReplicaUntilSecondAttemptAsync(string root, string bootstrapServers)
    {
        ContinualServeProcess replica = ContinualServeProcess.Start("replica", root,
            "serve", "--urls", "http://127.0.0.1:0", "--store", Path.Combine(root, "replica"), "--device", "cpu",
            "--bootstrap-servers", bootstrapServers, "--Distribution:RetryDelay=00:00:00.200");
        DateTime deadline = DateTime.UtcNow.AddSeconds(30);
        while (!replica.OutputTail.Contains("(attempt 2)", StringComparison.Ordinal) && DateTime.UtcNow < deadline && !replica.HasExited)
        {
            await Task.Delay(100);
        }

        return replica;
    }
}
