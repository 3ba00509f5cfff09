using Confluent.Kafka;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Tests.Promotion;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Restarts;

/// <summary>
/// Restarts on a store whose newest version has another spec than <see cref="LearnerOptions.InitialSpec"/>: the stored
/// spec trains, so it must also decide which records are valid and which golden set fits.
/// </summary>
[Collection(GoldenSetGaugeGroup.Name)]
public sealed class ChangedSpecRestartTests : IDisposable
{
    private const string Topic = "changed-spec-examples";
    private const int HiddenSize = 32;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-changed-spec-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task StoredSpecDecodesRecords()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            await TrainFirstVersionAsync(broker.BootstrapServers);
            LearnerOptions narrow = Options(broker.BootstrapServers);
            narrow.InitialSpec = narrow.InitialSpec with { InputShape = [100], Labels = ["first", "second"] };
            var loggerFactory = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(narrow, loggerFactory);

            learner.Start().Spec.FeatureCount.ShouldBe(784);
            // Task 2 has labels 2 and 3, which the configured two labels would reject as well.
            int[] taskTwo = Indices(task: 2)[^64..];
            LearnerHarness.Produce(broker.BootstrapServers, Topic, taskTwo, "second", task: 2);
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Consumed == taskTwo.Length);
            learner.Status.Invalid.ShouldBe(0, "records of the stored model's shape are valid");

            ProduceNarrow(broker.BootstrapServers, count: 8);
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Consumed == taskTwo.Length + 8 && learner.Status.LatestVersion == 3);
            learner.Stop(TimeSpan.FromSeconds(10));

            learner.Status.Invalid.ShouldBe(8, "records of the configured shape do not fit the stored model");
            learner.Status.Trained.ShouldBe(taskTwo.Length - learner.Status.HeldOut);
            loggerFactory.Logger.Messages.Count(message => message.Contains("Learner:InitialSpec", StringComparison.Ordinal)).ShouldBe(1);
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task GoldenSetFitsStoredSpec()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            await TrainFirstVersionAsync(broker.BootstrapServers);
            // Labels 0 to 3: valid for the stored ten labels, invalid for the two configured below.
            new GoldenSet
            {
                Examples = SplitTasks.OrderByTask(TestData.TestSet, maxTasks: 2)
                    .Select(index => TestData.Example(TestData.TestSet, index, "golden"))
                    .Select(example => new GoldenExample(example.Label, example.Features))
                    .ToArray(),
                UploadedAt = DateTimeOffset.UtcNow,
            }.Save(storeDirectory.Path);
            LearnerOptions relabelled = Options(broker.BootstrapServers);
            relabelled.InitialSpec = relabelled.InitialSpec with { Labels = ["first", "second"] };
            using var learner = new ContinualLearner(relabelled, NullLoggerFactory.Instance);

            learner.Start();
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Indices(task: 1)[..64], "second");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 3 || learner.Status.Rejected > 0);
            learner.Stop(TimeSpan.FromSeconds(10));

            learner.Status.Rejected.ShouldBe(0);
            learner.Store.TryLoadLatest()!.Manifest.Evaluation!.GoldenSetAccuracy.ShouldNotBeNull();
        });
    }


    private async Task TrainFirstVersionAsync(string bootstrapServers)
    {
        using var learner = new ContinualLearner(Options(bootstrapServers), NullLoggerFactory.Instance);
        learner.Start();
        LearnerHarness.Produce(bootstrapServers, Topic, Indices(task: 1)[..200], "first");
        await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2);
        learner.Stop(TimeSpan.FromSeconds(10));
    }

    private static void ProduceNarrow(string bootstrapServers, int count)
    {
        using IProducer<byte[], byte[]> producer = new ProducerBuilder<byte[], byte[]>(KafkaDefaults.CreateProducerConfig(bootstrapServers)).Build();
        for (int index = 0; index < count; index++)
        {
            string id = TestData.ExampleId("narrow", index);
            byte[] value = ExampleRecordCodec.Encode(id, 2, index % 2, new float[100]);
            producer.Produce(Topic, new Message<byte[], byte[]> { Key = System.Text.Encoding.UTF8.GetBytes(id), Value = value });
        }

        producer.Flush(TimeSpan.FromSeconds(20));
    }

    private static int[] Indices(int task) => SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: task).ToArray();

    private LearnerOptions Options(string bootstrapServers) =>
        LearnerHarness.Options(bootstrapServers, Topic, "changed-spec", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, HiddenSize);
}
