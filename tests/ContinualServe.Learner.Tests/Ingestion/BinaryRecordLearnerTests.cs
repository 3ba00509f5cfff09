using Confluent.Kafka;
using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Ingestion;

/// <summary>A learner reading binary and JSON records from one topic, through the embedded broker.</summary>
public sealed class BinaryRecordLearnerTests : IDisposable
{
    private const string Topic = "binary-examples";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-binary-records-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task MixedFormatsTrainEveryExample()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LabeledExample[] taskOne = TestData.TrainingExamplesByTask[0];
            LabeledExample[] binary = taskOne[..100];
            LabeledExample[] json = taskOne[100..200];
            await Produce(broker.BootstrapServers, RecordFormat.Binary, binary);
            await Produce(broker.BootstrapServers, RecordFormat.Json, json);
            ProduceDamagedBinaryRecord(broker.BootstrapServers);

            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "binary-test", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 32);
            options.Checkpoint.WriteTrainingLog = true;
            using var learner = new ContinualLearner(options, NullLoggerFactory.Instance);
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Consumed == 201 && learner.Status.LatestVersion == 2);
            learner.Stop(TimeSpan.FromSeconds(10));

            learner.Status.Invalid.ShouldBe(1, "the damaged binary record goes to the dead-letter topic");
            (learner.Status.Trained + learner.Status.HeldOut).ShouldBe(200);
            // The training log lists each trained example once; the held-out ones are never trained.
            IReadOnlyList<string> trained = TrainingLog.ReadIds(Path.Combine(options.Checkpoint.ResolveDirectory(options.StoreDirectory), TrainingLog.FileName));
            trained.Count.ShouldBe((int)learner.Status.Trained);
            trained.ShouldBeSubsetOf(binary.Concat(json).Select(example => example.Id));
            trained.Count(id => binary.Any(example => example.Id == id)).ShouldBeGreaterThan(80, "binary records were not trained");
            trained.Count(id => json.Any(example => example.Id == id)).ShouldBeGreaterThan(80, "JSON records were not trained");
        });
    }

    private static async Task Produce(string bootstrapServers, RecordFormat format, LabeledExample[] examples)
    {
        var producer = new ExampleProducer(bootstrapServers, Topic, NullLogger.Instance) { MaxLag = 0, Format = format };
        (await producer.ProduceAsync(examples, examples.Length, null, null, CancellationToken.None)).ShouldBe(examples.Length);
    }

    // A binary record whose label is outside the model's classes.
    private static void ProduceDamagedBinaryRecord(string bootstrapServers)
    {
        byte[] record = BinaryExampleRecord.Encode("damaged-1", 1, 0, new byte[784]);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(record.AsSpan(10), 42);
        using IProducer<string, byte[]> producer = new ProducerBuilder<string, byte[]>(KafkaDefaults.CreateProducerConfig(bootstrapServers)).Build();
        producer.Produce(Topic, new Message<string, byte[]> { Key = "damaged-1", Value = record });
        producer.Flush(TimeSpan.FromSeconds(20));
    }
}
