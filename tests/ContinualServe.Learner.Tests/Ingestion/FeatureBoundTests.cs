using Confluent.Kafka;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Ingestion;

/// <summary>
/// Records with a feature whose absolute value is above Learner:MaxAbsFeatureValue go to the dead-letter topic, so
/// their overflowing logits never reach a training step or the replay buffer.
/// </summary>
public sealed class FeatureBoundTests : IDisposable
{
    private const string Topic = "feature-bound";
    private const int InvalidRecordEvent = 205;
    private const int NonFiniteLossEvent = 207;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-feature-bound-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task HugeFeaturesAreDeadLettered()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 50), "train", task: 1);
            ProduceHugeFeatures(broker.BootstrapServers, 3e38f);
            ProduceHugeFeatures(broker.BootstrapServers, -3e38f);
            var loggerFactory = new RecordingLoggerFactory();
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "feature-bound", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 32);
            options.Promotion.Enabled = false;
            using var learner = new ContinualLearner(options, loggerFactory);

            learner.Start();
            await LearnerHarness.WaitUntilAsync(
                () => learner.Status.Consumed == 52 && learner.Status.Trained + learner.Status.HeldOut >= 50,
                "the 52 records were not in a published version in time");
            learner.Stop(TimeSpan.FromSeconds(10));

            learner.Status.Invalid.ShouldBe(2);
            (learner.Status.Trained + learner.Status.HeldOut).ShouldBe(50);
            string[] reasons = loggerFactory.Logger.Records.Where(record => record.EventId == InvalidRecordEvent).Select(record => record.Message).ToArray();
            reasons.Length.ShouldBe(2);
            reasons[0].ShouldContain("field 'features' item 0 is 3E+38; the maximum absolute value is 1000000 (Learner:MaxAbsFeatureValue)");
            reasons[1].ShouldContain("field 'features' item 0 is -3E+38");
            loggerFactory.Logger.Records.ShouldNotContain(record => record.EventId == NonFiniteLossEvent);
        });
    }

    // Sends one record whose features are all <paramref name="value"/>.
    private static void ProduceHugeFeatures(string bootstrapServers, float value)
    {
        string id = $"huge-{value}";
        byte[] record = ExampleRecordCodec.Encode(id, task: 1, label: 0, Enumerable.Repeat(value, 784).ToArray());
        using IProducer<string, byte[]> producer = new ProducerBuilder<string, byte[]>(KafkaDefaults.CreateProducerConfig(bootstrapServers)).Build();
        producer.Produce(Topic, new Message<string, byte[]> { Key = id, Value = record });
        producer.Flush(TimeSpan.FromSeconds(20));
    }
}
