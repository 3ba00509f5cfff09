using Confluent.Kafka;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Kafka;

public sealed class ConsumerLagTests : IDisposable
{
    private const string Topic = "lag-examples";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-learner-lag-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task LagGrowsWhileLearningIsPaused()
    {
        await Task.Run(async () =>
        {
            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic(Topic, partitionCount: 1);
            broker.CreateTopic(Topic + ".dlq", partitionCount: 1);
            using var learner = new ContinualLearner(Options(broker.BootstrapServers), NullLoggerFactory.Instance);
            learner.Start();
            Produce(broker.BootstrapServers, first: 0, count: 10);
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Consumed == 10);

            // The learner applies a pause before its next read, within about 100 ms, and records read before that still count as consumed.
            learner.PauseLearning();
            await Task.Delay(TimeSpan.FromSeconds(1));
            Produce(broker.BootstrapServers, first: 10, count: 40);
            await LearnerHarness.WaitUntilAsync(() => learner.Status.ConsumerLag > 0 && learner.Status.ConsumerLag + learner.Status.Consumed == 50);
            await Task.Delay(TimeSpan.FromSeconds(1));
            learner.Status.Consumed.ShouldBeLessThan(50, "a paused learner kept consuming");

            learner.ResumeLearning();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Consumed == 50 && learner.Status.ConsumerLag == 0);
            learner.Stop(TimeSpan.FromSeconds(10));
        });
    }

    private LearnerOptions Options(string bootstrapServers) =>
        LearnerHarness.Options(bootstrapServers, Topic, "lag-test", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);

    private static void Produce(string bootstrapServers, int first, int count)
    {
        using IProducer<byte[], byte[]> producer = new ProducerBuilder<byte[], byte[]>(KafkaDefaults.CreateProducerConfig(bootstrapServers)).Build();
        for (int index = first; index < first + count; index++)
        {
            string id = TestData.ExampleId("lag", index);
            byte[] value = ExampleRecordCodec.Encode(id, task: 1, TestData.TrainingSet.Labels[index], TestData.TrainingSet.Image(index));
            producer.Produce(Topic, new Message<byte[], byte[]> { Key = System.Text.Encoding.UTF8.GetBytes(id), Value = value });
        }

        producer.Flush(TimeSpan.FromSeconds(20));
    }
}
