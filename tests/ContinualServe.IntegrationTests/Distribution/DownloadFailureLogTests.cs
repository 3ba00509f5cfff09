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
    [InlineData("", "from no store URL failed (attempt 2): Version 1 cannot be downloaded: the announcement has no valid store URL")]
    public async Task FailedDownloadLogsReasonWithoutStack(string storeUrl, string expected)
    {
        using var temporary = new TemporaryDirectory();
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("model-versions", 1);
        using (var publisher = new ModelVersionPublisher(broker.BootstrapServers, new DistributionOptions(), NullLogger<ModelVersionPublisher>.Instance))
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
            publisher.Flush(TimeSpan.FromSeconds(10));
        }

        await using ContinualServeProcess replica = ContinualServeProcess.Start("replica", temporary.Path,
            "serve", "--urls", "http://127.0.0.1:0", "--store", Path.Combine(temporary.Path, "replica"), "--device", "cpu",
            "--bootstrap-servers", broker.BootstrapServers, "--Distribution:RetryDelay=00:00:00.200");
        DateTime deadline = DateTime.UtcNow.AddSeconds(30);
        while (!replica.OutputTail.Contains("(attempt 2)", StringComparison.Ordinal) && DateTime.UtcNow < deadline && !replica.HasExited)
        {
            await Task.Delay(100);
        }

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
        using (var publisher = new ModelVersionPublisher(broker.BootstrapServers, new DistributionOptions(), NullLogger<ModelVersionPublisher>.Instance))
        {
            foreach (string storeUrl in new[] { "http://127.0.0.1:9", "http://127.0.0.1:10" })
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

        await using ContinualServeProcess replica = ContinualServeProcess.Start("replica", temporary.Path,
            "serve", "--urls", "http://127.0.0.1:0", "--store", Path.Combine(temporary.Path, "replica"), "--device", "cpu",
            "--bootstrap-servers", broker.BootstrapServers, "--Distribution:RetryDelay=00:00:00.200");
        DateTime deadline = DateTime.UtcNow.AddSeconds(30);
        while (!replica.OutputTail.Contains("(attempt 2)", StringComparison.Ordinal) && DateTime.UtcNow < deadline && !replica.HasExited)
        {
            await Task.Delay(100);
        }

        replica.OutputTail.ShouldContain("from http://127.0.0.1:10 failed (attempt 2)");
        replica.OutputTail.ShouldNotContain("from http://127.0.0.1:9 failed");
    }
}
