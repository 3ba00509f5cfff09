using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Ingestion;

public sealed class ExampleProducerTests
{
    [Fact(Timeout = 30_000)]
    public async Task StalledConsumerIsReportedWhileWaiting()
    {
        await Task.Run(async () =>
        {
            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic("paced", partitionCount: 1);
            var logger = new RecordingLogger();
            var producer = new ExampleProducer(broker.BootstrapServers, "paced", logger)
            {
                MaxLag = 10,
                MaxTasks = 1,
                WaitReportInterval = TimeSpan.FromMilliseconds(200),
            };
            using var cancellation = new CancellationTokenSource(TimeSpan.FromSeconds(2));

            // The consumer never moves, so the producer stops after 10 records and waits until cancelled.
            await Should.ThrowAsync<OperationCanceledException>(
                () => producer.ProduceAsync(TestData.TrainingSet, () => 0, null, cancellation.Token));

            string[] waiting = logger.Messages.Where(message => message.StartsWith("Waiting", StringComparison.Ordinal)).ToArray();
            waiting.Length.ShouldBeGreaterThanOrEqualTo(2);
            waiting[0].ShouldContain("at offset 0");
            waiting[0].ShouldContain("Is the learner running and not paused?");
        });
    }
}
