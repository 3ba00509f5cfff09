using Confluent.Kafka;
using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Ingestion;

/// <summary>Records whose id contains a control character go to the dead-letter topic, so the training log keeps one id per line.</summary>
public sealed class ExampleIdTests : IDisposable
{
    private const string Topic = "example-ids";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-example-ids-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task ControlCharacterIdsAreDeadLettered()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 50), "train", task: 1);
            using (IProducer<string, byte[]> producer = new ProducerBuilder<string, byte[]>(KafkaDefaults.CreateProducerConfig(broker.BootstrapServers)).Build())
            {
                byte[] pixels = new byte[784];
                producer.Produce(Topic, new Message<string, byte[]> { Key = "evil", Value = ExampleRecordCodec.Encode("evil\nfake-id-line", 1, 0, pixels) });
                producer.Produce(Topic, new Message<string, byte[]> { Key = "nul", Value = ExampleRecordCodec.Encode("nul\0id", 1, 0, pixels) });
                producer.Produce(Topic, new Message<string, byte[]> { Key = "binary", Value = BinaryExampleRecord.Encode("binary\r\nfake-id-line", 1, 0, pixels) });
                producer.Flush(TimeSpan.FromSeconds(20));
            }

            var loggerFactory = new RecordingLoggerFactory();
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "example-ids", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 32);
            options.Promotion.Enabled = false;
            options.Checkpoint.WriteTrainingLog = true;
            using var learner = new ContinualLearner(options, loggerFactory);

            learner.Start();
            await LearnerHarness.WaitUntilAsync(
                () => learner.Status.Consumed == 53 && learner.Status.Trained + learner.Status.HeldOut >= 50, "the 53 records were not in a published version in time");
            learner.Stop(TimeSpan.FromSeconds(10));

            learner.Status.Invalid.ShouldBe(3);
            (learner.Status.Trained + learner.Status.HeldOut).ShouldBe(50);
            string[] lines = File.ReadAllLines(Path.Combine(options.Checkpoint.ResolveDirectory(options.StoreDirectory), TrainingLog.FileName));
            lines.Length.ShouldBe((int)learner.Status.Trained);
            lines.ShouldBeSubsetOf(Enumerable.Range(0, 50).Select(index => TestData.ExampleId("train", index)));
            string[] reasons = loggerFactory.Logger.Records.Where(record => record.EventId == 205).Select(record => record.Message).ToArray();
            reasons.Length.ShouldBe(3);
            reasons[0].ShouldContain("field 'id' contains the character U+000A at index 4");
            reasons[1].ShouldContain("field 'id' contains the character U+0000 at index 3");
            reasons[2].ShouldContain("field 'id' contains the character U+000D at index 6");
        });
    }
}
