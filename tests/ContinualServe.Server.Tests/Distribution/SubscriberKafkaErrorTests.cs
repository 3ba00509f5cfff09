using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Serving;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>The log of a replica's Kafka errors on the version topic, which librdkafka repeats during a broker outage.</summary>
public sealed class SubscriberKafkaErrorTests : IDisposable
{
    private const int KafkaErrorEvent = 466;
    private const int TopicMissingEvent = 465;
    private const int BrokersUnreachableEvent = 404;
    private const int TopicUnusableEvent = 405;

    private readonly string storeDirectory = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));

    public void Dispose() => Directory.Delete(storeDirectory, recursive: true);

    // A replica once logged this warning about 19 times a second for the 9 minutes of a broker outage.
    [Fact]
    public void RepeatedKafkaErrorsAreRateLimited()
    {
        var logger = new LogRecorder<ModelVersionSubscriber>();
        using var live = new LiveModel();
        using ModelVersionSubscriber subscriber = CreateSubscriber(live, logger);

        for (int error = 0; error < 250; error++)
        {
            subscriber.ReportKafkaError(ErrorCode.Local_AllBrokersDown, "1/1 brokers are down");
        }

        string[] logged = [.. logger.Entries.Where(entry => entry.EventId == KafkaErrorEvent).Select(entry => entry.Message)];
        logged.Length.ShouldBe(12, "the first 10 errors and then every 100th are logged");
        logged[0].ShouldBe(
            "Kafka error Local_AllBrokersDown on the version topic: 1/1 brokers are down "
            + "(error 1 since the start, of which the first 10 and every 100th are logged)");
        logged[9].ShouldContain("(error 10 since the start,");
        logged[10].ShouldContain("(error 100 since the start,");
        logged[11].ShouldContain("(error 200 since the start,");
    }

    // No process listens on the port, so every metadata request fails, and the log must not blame a missing topic.
    [Fact(Timeout = 60_000)]
    public async Task UnreachableBrokerIsNotMissingTopic()
    {
        string bootstrapServers = "127.0.0.1:" + ClosedPort();
        var logger = new LogRecorder<ModelVersionSubscriber>();
        using var live = new LiveModel();
        using ModelVersionSubscriber subscriber = CreateSubscriber(live, logger, new DistributionOptions { BootstrapServers = bootstrapServers });

        await subscriber.StartAsync(CancellationToken.None);
        bool logged = await WaitForEventAsync(logger, BrokersUnreachableEvent, TimeSpan.FromSeconds(30));
        await subscriber.StopAsync(CancellationToken.None);

        logged.ShouldBeTrue("no warning about unreachable brokers within 30 s: " + string.Join(" | ", logger.Entries.Select(entry => entry.Message)));
        string message = logger.Entries.First(entry => entry.EventId == BrokersUnreachableEvent).Message;
        message.ShouldContain($"Cannot reach the Kafka brokers {bootstrapServers} to look up version topic model-versions");
        message.ShouldContain("Distribution:BootstrapServers");
        logger.Entries.ShouldNotContain(entry => entry.EventId == TopicMissingEvent, "the topic was never looked up, so it is not known to be missing");
    }

    // librdkafka's mock cluster creates a topic on a metadata request for it, so the errors that a real broker returns
    // are passed in directly.
    [Fact]
    public void TopicWaitNamesCause()
    {
        var logger = new LogRecorder<ModelVersionSubscriber>();
        using var live = new LiveModel();
        using ModelVersionSubscriber subscriber = CreateSubscriber(live, logger, new DistributionOptions { BootstrapServers = "kafka:9092" });

        subscriber.LogTopicWait(null, new Error(ErrorCode.UnknownTopicOrPart));
        subscriber.LogTopicWait(new Error(ErrorCode.Local_Transport, "1/1 brokers are down"), new Error(ErrorCode.UnknownTopicOrPart));
        subscriber.LogTopicWait(null, new Error(ErrorCode.TopicAuthorizationFailed, "not authorized"));

        (int EventId, string Message)[] logged = [.. logger.Entries.Select(entry => (entry.EventId, entry.Message))];
        logged.Length.ShouldBe(3);
        logged[0].EventId.ShouldBe(TopicMissingEvent);
        logged[0].Message.ShouldContain("does not exist yet");
        logged[1].EventId.ShouldBe(BrokersUnreachableEvent);
        logged[1].Message.ShouldContain("Cannot reach the Kafka brokers kafka:9092");
        logged[1].Message.ShouldContain("Local_Transport (1/1 brokers are down)");
        logged[2].EventId.ShouldBe(TopicUnusableEvent);
        logged[2].Message.ShouldContain("TopicAuthorizationFailed (not authorized)");
    }

    // Waits, at most timeout, until logger has an entry with eventId. Returns false when it has none.
    private static async Task<bool> WaitForEventAsync(LogRecorder<ModelVersionSubscriber> logger, int eventId, TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (!logger.Entries.Any(entry => entry.EventId == eventId) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        return logger.Entries.Any(entry => entry.EventId == eventId);
    }

    // A port that was free a moment ago. Nothing listens on it unless another process takes it in between.
    private static int ClosedPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private ModelVersionSubscriber CreateSubscriber(LiveModel live, LogRecorder<ModelVersionSubscriber> logger, DistributionOptions? options = null)
    {
        var serverOptions = Options.Create(new ServerOptions
        {
            ModelName = RunningServer.Spec.Name,
            StoreDirectory = storeDirectory,
            Device = "cpu",
        });
        var swapper = new ModelSwapper(live, serverOptions, NullLogger<ModelSwapper>.Instance);
        return new ModelVersionSubscriber(
            Options.Create(options ?? new DistributionOptions()), serverOptions, swapper, live, KafkaClientProperties.None, logger);
    }
}
