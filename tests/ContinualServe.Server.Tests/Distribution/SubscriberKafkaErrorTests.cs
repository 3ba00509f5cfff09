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

    private ModelVersionSubscriber CreateSubscriber(LiveModel live, LogRecorder<ModelVersionSubscriber> logger)
    {
        var serverOptions = Options.Create(new ServerOptions
        {
            ModelName = RunningServer.Spec.Name,
            StoreDirectory = storeDirectory,
            Device = "cpu",
        });
        var swapper = new ModelSwapper(live, serverOptions, NullLogger<ModelSwapper>.Instance);
        return new ModelVersionSubscriber(
            Options.Create(new DistributionOptions()), serverOptions, swapper, live, KafkaClientProperties.None, logger);
    }
}
