using Confluent.Kafka;
using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Holdout;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Promotion;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Promotion;

[Collection(GoldenSetGaugeGroup.Name)]
public sealed class LearnerPromotionTests : IDisposable
{
    private const string Topic = "gate-examples";
    private const int VersionWithoutCheckpointEventId = 243;
    private const int RevertFileUnusableEventId = 224;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-learner-gate-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task ShuffledLabelsKeepLiveVersion()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            // A golden set of task 1's test images, which the good round should classify well.
            new GoldenSet
            {
                Examples = SplitTasks.OrderByTask(TestData.TestSet, maxTasks: 1)
                    .Select(index => TestData.Example(TestData.TestSet, index, "golden"))
                    .Select(example => new GoldenExample(example.Label, example.Features))
                    .ToArray(),
                UploadedAt = DateTimeOffset.UtcNow,
            }.Save(storeDirectory.Path);
            // The learner starts from a version with seeded weights, because the weights it would draw itself come from
            // libtorch's process-wide generator, which tests running in parallel draw from too.
            LearnerOptions options = Options(broker.BootstrapServers);
            SeededModules.SaveInitialVersion(storeDirectory.Path, options.InitialSpec, seed: 1);
            using var learner = new ContinualLearner(options, NullLoggerFactory.Instance);
            // The learner thread raises VersionPublished just after it updates Status, so the test reads both through
            // a thread-safe queue and waits for the event as well as for the status.
            var published = new System.Collections.Concurrent.ConcurrentQueue<long>();
            learner.VersionPublished += version => published.Enqueue(version.Number);
            learner.Start();
            int[] taskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();

            // Round 1: true labels. The idle round promotes version 2.
            LearnerHarness.Produce(broker.BootstrapServers, Topic, taskOne, "good");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2 && learner.Status.HeldOut == HoldoutCount(taskOne, "good") && !published.IsEmpty);
            published.ToArray().ShouldBe(new long[] { 2 });

            // Round 2: the same images with shuffled labels. The idle round's candidate must be rejected.
            LearnerHarness.Produce(broker.BootstrapServers, Topic, taskOne, "bad", label: ShuffledLabels());
            long heldOut = HoldoutCount(taskOne, "good") + HoldoutCount(taskOne, "bad");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.HeldOut == heldOut);

            learner.Stop(TimeSpan.FromSeconds(10));
            published.ToArray().ShouldBe(new long[] { 2 });
            learner.Status.LatestVersion.ShouldBe(2);
            learner.Store.ListVersionNumbers().ShouldBe(new long[] { 1, 2 });
            EvaluationSummary promoted = learner.Store.TryLoadLatest()!.Manifest.Evaluation!;
            promoted.AverageAccuracy.ShouldBeGreaterThan(0.9);
            promoted.GoldenSetAccuracy.ShouldNotBeNull().ShouldBeGreaterThan(0.9);
            ContinualServeMetrics.GoldenSetAccuracy.Value.ShouldBe(promoted.GoldenSetAccuracy.Value, "the gauge shows the promoted version's golden-set accuracy, not the rejected candidate's");
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task RejectedRoundCommitsOffsets()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers);
            SeededModules.SaveInitialVersion(storeDirectory.Path, options.InitialSpec, seed: 1);
            using var learner = new ContinualLearner(options, NullLoggerFactory.Instance);
            learner.Start();
            int[] taskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();

            await PromoteThenRejectAsync(learner, broker.BootstrapServers, taskOne);

            long produced = 2L * taskOne.Length;
            CommittedOffset(broker.BootstrapServers, options.GroupId).ShouldBe(produced, "the committed offset must cover the rejected round");
            LearnerCheckpoint checkpoint = learner.Checkpoint.ShouldNotBeNull();
            checkpoint.ModelVersion.ShouldBe(2);
            checkpoint.Offsets.Single().Offset.ShouldBe(produced);
            learner.Store.ListVersionNumbers().ShouldBe(new long[] { 1, 2 });
        });
    }

    [Fact(Timeout = 180_000)]
    public async Task RestartAfterRejectionSkipsRejectedExamples()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers);
            options.Checkpoint.WriteTrainingLog = true;
            SeededModules.SaveInitialVersion(storeDirectory.Path, options.InitialSpec, seed: 1);
            int[] taskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();
            using (var learner = new ContinualLearner(options, NullLoggerFactory.Instance))
            {
                learner.Start();
                await PromoteThenRejectAsync(learner, broker.BootstrapServers, taskOne);
                learner.Stop(TimeSpan.FromSeconds(10)).ShouldBeTrue();
            }

            var loggers = new RecordingLoggerFactory();
            using var restarted = new ContinualLearner(options, loggers);
            restarted.Start();
            long produced = 2L * taskOne.Length;
            LearnerCheckpoint checkpoint = restarted.Checkpoint.ShouldNotBeNull();
            checkpoint.ModelVersion.ShouldBe(2);
            checkpoint.Offsets.Single().Offset.ShouldBe(produced, "the restart must resume after the rejected examples");

            int[] after = taskOne[..100];
            LearnerHarness.Produce(broker.BootstrapServers, Topic, after, "after");
            await LearnerHarness.WaitUntilAsync(
                () => restarted.Status.RoundPosition == produced + after.Length, "the round after the restart did not end");
            restarted.Stop(TimeSpan.FromSeconds(10)).ShouldBeTrue();

            restarted.Status.Consumed.ShouldBe(after.Length, "the restarted learner read a rejected record again");
            loggers.Logger.Records.ShouldNotContain(
                record => record.EventId == VersionWithoutCheckpointEventId, "the checkpoint's version is the live one");
            IReadOnlyList<string> trainedIds = TrainingLog.ReadIds(
                Path.Combine(options.Checkpoint.ResolveDirectory(options.StoreDirectory), TrainingLog.FileName));
            trainedIds.Count.ShouldBe(trainedIds.Distinct().Count(), "an example was trained twice");
            trainedIds.ShouldBe(
                [.. TrainedIds(taskOne, "good"), .. TrainedIds(taskOne, "bad"), .. TrainedIds(after, "after")],
                ignoreOrder: true);
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task FailedRejectionCheckpointStopsLearner()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers);
            string checkpoints = Path.Combine(storeDirectory.Path, "checkpoints");
            options.Checkpoint.Directory = checkpoints;
            SeededModules.SaveInitialVersion(storeDirectory.Path, options.InitialSpec, seed: 1);
            using var learner = new ContinualLearner(options, NullLoggerFactory.Instance);
            learner.Start();
            int[] taskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();
            LearnerHarness.Produce(broker.BootstrapServers, Topic, taskOne, "good");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2 && learner.Status.RoundPosition == taskOne.Length);

            // A regular file in place of the checkpoint directory makes the write fail as on a full or read-only volume, even for root.
            Directory.Delete(checkpoints, recursive: true);
            await File.WriteAllTextAsync(checkpoints, "a file where the checkpoint directory was");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, taskOne, "bad", label: ShuffledLabels());
            await LearnerHarness.WaitUntilAsync(
                () => learner.Failure is not null, "the learner did not stop on the failed checkpoint write after the rejection");

            learner.Failure.ShouldBeAssignableTo<IOException>();
            learner.Status.IsRunning.ShouldBeFalse();
            learner.Store.ListVersionNumbers().ShouldBe(new long[] { 1, 2 }, "the shuffled round must be rejected, not promoted");
            learner.Status.Rejected.ShouldBe(0, "the rejection is counted after its checkpoint");
            CommittedOffset(broker.BootstrapServers, options.GroupId)
                .ShouldBe(taskOne.Length, "the failed checkpoint's offsets must not be committed");
        });
    }

    // Round 1 with true labels is promoted as version 2. Round 2 has the same images with shuffled labels and is rejected.
    // The store directory, which contains the checkpoint directory, is replaced while the rejected candidate is evaluated.
    // The revert to the live version must stop the learner with the directory's error, not read files of the
    // replacement or warn that the checkpoint's optimizer file is damaged.
    [Fact(Timeout = 180_000)]
    public async Task ReplacedStoreStopsRevert()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers);
            SeededModules.SaveInitialVersion(storeDirectory.Path, options.InitialSpec, seed: 1);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            learner.Start();
            int[] taskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();
            LearnerHarness.Produce(broker.BootstrapServers, Topic, taskOne, "good");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2 && learner.Status.RoundPosition == taskOne.Length);
            int replaced = 0;
            learner.FaultHooks.BeforeEvaluationBatch = () =>
            {
                if (Interlocked.Exchange(ref replaced, 1) == 0)
                {
                    Directory.Move(storeDirectory.Path, storeDirectory.Path + "-moved");
                    Directory.CreateDirectory(storeDirectory.Path);
                }
            };

            LearnerHarness.Produce(broker.BootstrapServers, Topic, taskOne, "bad", label: ShuffledLabels());
            await LearnerHarness.WaitUntilAsync(() => learner.Failure is not null, "the learner did not stop on the replaced store");

            learner.Failure.ShouldBeOfType<StoreDirectoryChangedException>();
            loggers.Logger.Records.ShouldNotContain(record => record.EventId == RevertFileUnusableEventId);
        });
    }

    private static async Task PromoteThenRejectAsync(ContinualLearner learner, string bootstrapServers, int[] taskOne)
    {
        LearnerHarness.Produce(bootstrapServers, Topic, taskOne, "good");
        await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2 && learner.Status.RoundPosition == taskOne.Length);

        LearnerHarness.Produce(bootstrapServers, Topic, taskOne, "bad", label: ShuffledLabels());
        await LearnerHarness.WaitUntilAsync(
            () => learner.Status.Rejected > 0 && learner.Status.RoundPosition == 2L * taskOne.Length, "the shuffled round was not rejected");
        learner.Status.LatestVersion.ShouldBe(2, "the shuffled round must not be promoted");
    }

    // Returns the group's committed offset on partition 0, read without joining the group.
    private static long CommittedOffset(string bootstrapServers, string group)
    {
        using IConsumer<byte[], byte[]> consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = group,
        }).Build();
        return consumer.Committed([new TopicPartition(Topic, 0)], TimeSpan.FromSeconds(10))[0].Offset.Value;
    }

    private static IEnumerable<string> TrainedIds(int[] indices, string prefix)
    {
        var router = new HoldoutRouter(0.1);
        return indices.Select(index => TestData.ExampleId(prefix, index)).Where(id => !router.IsHoldout(id));
    }

    private LearnerOptions Options(string bootstrapServers)
    {
        LearnerOptions options = LearnerHarness.Options(
            bootstrapServers, Topic, "gate-test", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive, StepsPerBatch = 3 }, hiddenSize: 64);
        options.Promotion = new PromotionOptions { MaxForgetting = 0.3, MaxAverageAccuracyDrop = 0.1 };
        return options;
    }

    // Labels drawn from all ten classes, the same sequence on every call.
    private static Func<int, int> ShuffledLabels()
    {
        var random = new Random(11);
        return _ => random.Next(10);
    }

    private static long HoldoutCount(int[] indices, string prefix)
    {
        var router = new HoldoutRouter(0.1);
        return indices.Count(index => router.IsHoldout(TestData.ExampleId(prefix, index)));
    }
}
