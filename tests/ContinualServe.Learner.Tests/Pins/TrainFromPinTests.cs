using ContinualServe.Learner.Data;
using ContinualServe.Learner.Holdout;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Promotion;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using ContinualServe.Learner.Tests.Faults;
using Microsoft.Extensions.Logging;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Pins;

/// <summary>
/// Learner:TrainFromPin against the embedded broker. The learner publishes versions 2 to 4 from task 1, an operator pins
/// an older version, and the learner goes on. The round after the pin trains on a mix of examples. A later round only
/// adds holdout examples, so its candidate has exactly the weights of the version it trains from.
/// </summary>
public sealed class TrainFromPinTests : IDisposable
{
    private const string Topic = "pin-examples";
    private const string GroupId = "pin-test";
    private const int TrainFromPinEventId = 281;
    private const int PinnedVersionUnusableEventId = 282;
    private const int AnalyticKeptEventId = 283;
    private const int PinnedBaseRestoredEventId = 285;
    private const int VersionWithoutCheckpointEventId = 243;
    private const int AssignedEventId = 271;
    private const int ConsumeErrorEventId = 208;
    private const int RoundWriteStalledEventId = 267;
    private const int FileReadStalledEventId = 276;

    private static readonly HoldoutRouter Router = new(0.1);
    private static readonly int[] TaskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();
    private static readonly int ChunkSize = TaskOne.Length / 4;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-learner-pin-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 180_000)]
    public async Task NextVersionDescendsFromPin()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers, trainFromPin: true, ReplayStrategy.Naive);
            var logs = new RecordingLoggerFactory();
            using (var learner = new ContinualLearner(options, logs))
            {
                learner.Start();
                await PublishThreeVersionsAndPin(broker, learner, pinned: 2);

                // The round after the pin trains on the base, version 4, and is discarded; the learner then trains from version 2.
                LearnerHarness.Produce(broker.BootstrapServers, Topic, Chunk(3), "mixed");
                await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2 && learner.Status.HeldOut == HeldOutOfChunks(4));
                learner.Stop(TimeSpan.FromSeconds(10));
                learner.Checkpoint.ShouldNotBeNull().ModelVersion.ShouldBe(2, "a rollback or a restart loads the new base");
            }

            logs.Logger.Records.Count(record => record.EventId == TrainFromPinEventId).ShouldBe(1);
            logs.Logger.Records.Single(record => record.EventId == TrainFromPinEventId).Message.ShouldContain("instead of version 4");

            // The restarted learner continues from the checkpoint of version 2 and reads on after the discarded records.
            var restartLogs = new RecordingLoggerFactory();
            using var restarted = new ContinualLearner(options, restartLogs);
            restarted.Start().Number.ShouldBe(2);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, HeldOutOnly("probe"), "probe");
            await LearnerHarness.WaitUntilAsync(() => restarted.Status.LatestVersion == 5);
            restarted.Stop(TimeSpan.FromSeconds(10));

            restartLogs.Logger.Records.ShouldContain(record => record.EventId == PinnedBaseRestoredEventId);
            restartLogs.Logger.Records.ShouldNotContain(record => record.EventId == TrainFromPinEventId);
            restarted.Status.Trained.ShouldBe(0, "the records trained on version 4 after the pin are not read again");
            ModelVersion next = Load(restarted.Store, 5);
            next.Manifest.ParentVersion.ShouldBe(2);
            next.Manifest.ExamplesTrained.ShouldBe(Load(restarted.Store, 2).Manifest.ExamplesTrained, "the examples trained on version 4 after the pin were discarded");
            SameWeights(next, Load(restarted.Store, 2)).ShouldBeTrue("the probe round trains nothing, so version 5 has version 2's weights");
            SameWeights(next, Load(restarted.Store, 4)).ShouldBeFalse();

            // A crash after version 5 was saved and before its checkpoint leaves the checkpoint of the pin as the newest.
            string[] checkpoints = Directory.GetDirectories(Path.Combine(storeDirectory.Path, "learner-checkpoint"), "c*").Order(StringComparer.Ordinal).ToArray();
            Directory.Delete(checkpoints[^1], recursive: true);
            var crashLogs = new RecordingLoggerFactory();
            using var afterCrash = new ContinualLearner(options, crashLogs);
            afterCrash.Start().Number.ShouldBe(2);
            afterCrash.Stop(TimeSpan.FromSeconds(10));
            crashLogs.Logger.Records.ShouldContain(record => record.EventId == VersionWithoutCheckpointEventId, "version 5 lost its checkpoint");
            crashLogs.Logger.Records.ShouldNotContain(record => record.EventId == PinnedBaseRestoredEventId);
        });
    }

    [Fact(Timeout = 180_000)]
    public async Task RejectionOnPinnedBaseKeepsIt()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers, trainFromPin: true, ReplayStrategy.Naive);
            long produced = 4L * ChunkSize + TaskOne.Length;
            using (var learner = new ContinualLearner(options, new RecordingLoggerFactory()))
            {
                learner.Start();
                await PublishThreeVersionsAndPin(broker, learner, pinned: 2);
                LearnerHarness.Produce(broker.BootstrapServers, Topic, Chunk(3), "mixed");
                await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2 && learner.Status.HeldOut == HeldOutOfChunks(4));

                // Task 1 with shuffled labels: the gate rejects the candidate trained from version 2.
                var random = new Random(11);
                LearnerHarness.Produce(broker.BootstrapServers, Topic, TaskOne, "shuffled", label: _ => random.Next(10));
                await LearnerHarness.WaitUntilAsync(
                    () => learner.Status.Rejected > 0 && learner.Status.RoundPosition == produced, "the shuffled round was not rejected");
                learner.Stop(TimeSpan.FromSeconds(10));
                learner.Status.LatestVersion.ShouldBe(2);
            }

            var logs = new RecordingLoggerFactory();
            using var restarted = new ContinualLearner(options, logs);
            restarted.Start().Number.ShouldBe(2);
            restarted.Stop(TimeSpan.FromSeconds(10));

            restarted.Checkpoint.ShouldNotBeNull().Offsets.Single().Offset.ShouldBe(produced, "the rejected records are not read again");
            logs.Logger.Records.ShouldContain(record => record.EventId == PinnedBaseRestoredEventId);
            logs.Logger.Records.ShouldNotContain(
                record => record.EventId == VersionWithoutCheckpointEventId, "the pinned base is the base on purpose");
        });
    }

    // `continualserve produce --group` waits for the group's commit, which no later round makes when the stream ends here.
    [Fact(Timeout = 180_000)]
    public async Task PinCheckpointCommitsOffsets()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            using var learner = new ContinualLearner(Options(broker.BootstrapServers, trainFromPin: true, ReplayStrategy.Naive), new RecordingLoggerFactory());
            learner.Start();
            await PublishThreeVersionsAndPin(broker, learner, pinned: 2);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Chunk(3), "mixed");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2 && learner.Status.HeldOut == HeldOutOfChunks(4));

            // Checked before the stop, because a stop commits the checkpoint's offsets too.
            GroupMembership.CommittedOffset(broker.BootstrapServers, Topic, GroupId).ShouldBe(4L * ChunkSize, "the offsets of the pin's checkpoint were not committed");
            learner.Stop(TimeSpan.FromSeconds(10));
        });
    }

    // An injected wait delays the checkpoint write of the pinned base by twice max.poll.interval.ms.
    [Fact(Timeout = 180_000)]
    public async Task SlowPinCheckpointKeepsGroup()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var logs = new RecordingLoggerFactory();
            LearnerOptions options = Options(broker.BootstrapServers, trainFromPin: true, ReplayStrategy.Naive);
            options.RoundWriteStallThreshold = TimeSpan.FromSeconds(1);
            using var learner = new ContinualLearner(options, logs, GroupMembership.ShortMaxPollInterval());
            learner.Start();
            await PublishThreeVersionsAndPin(broker, learner, pinned: 2);
            int writes = 0;
            learner.FaultHooks.BeforeCheckpointWrite = () =>
            {
                if (Interlocked.Increment(ref writes) == 1)
                {
                    Thread.Sleep(2 * GroupMembership.MaxPollInterval);
                }
            };

            LearnerHarness.Produce(broker.BootstrapServers, Topic, Chunk(3), "mixed");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2 && learner.Status.HeldOut == HeldOutOfChunks(4));
            learner.Stop(TimeSpan.FromSeconds(10));

            writes.ShouldBe(1, "the pin's checkpoint was not written once");
            logs.Logger.Records.Count(record => record.EventId == RoundWriteStalledEventId).ShouldBe(1, "the held checkpoint write was not reported as stalled");
            logs.Logger.Records.Count(record => record.EventId == AssignedEventId).ShouldBe(1, "the partitions were assigned again");
            logs.Logger.Records.ShouldNotContain(record => record.EventId == ConsumeErrorEventId);
            learner.Failure.ShouldBeNull();
            learner.Status.Consumed.ShouldBe(4L * ChunkSize, "a record was read twice");
        });
    }

    // An injected wait delays the first read of the new pin, or of the pinned version's files, by twice max.poll.interval.ms.
    [Theory(Timeout = 180_000)]
    [InlineData("pin")]
    [InlineData("pinned version")]
    public async Task SlowPinReadKeepsGroup(string delayedRead)
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var logs = new RecordingLoggerFactory();
            LearnerOptions options = Options(broker.BootstrapServers, trainFromPin: true, ReplayStrategy.Naive);
            options.RoundWriteStallThreshold = TimeSpan.FromSeconds(1);
            using var learner = new ContinualLearner(options, logs, GroupMembership.ShortMaxPollInterval());
            learner.Start();
            await PublishThreeVersionsAndPin(broker, learner, pinned: 2);
            int reads = 0;
            Action delayFirstRead = () =>
            {
                if (Interlocked.Increment(ref reads) == 1)
                {
                    Thread.Sleep(2 * GroupMembership.MaxPollInterval);
                }
            };
            if (delayedRead == "pin")
            {
                learner.FaultHooks.BeforePinRead = delayFirstRead;
            }
            else
            {
                learner.FaultHooks.BeforePinnedVersionLoad = delayFirstRead;
            }

            LearnerHarness.Produce(broker.BootstrapServers, Topic, Chunk(3), "mixed");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2 && learner.Status.HeldOut == HeldOutOfChunks(4));
            learner.Stop(TimeSpan.FromSeconds(10));

            reads.ShouldBeGreaterThanOrEqualTo(1, $"the {delayedRead} was not read");
            logs.Logger.Records.Count(record => record.EventId == FileReadStalledEventId).ShouldBe(1, "the held pin read was not reported as stalled");
            logs.Logger.Records.Count(record => record.EventId == AssignedEventId).ShouldBe(1, "the partitions were assigned again");
            logs.Logger.Records.ShouldNotContain(record => record.EventId == ConsumeErrorEventId);
            learner.Failure.ShouldBeNull();
            learner.Status.Consumed.ShouldBe(4L * ChunkSize, "a record was read twice");
        });
    }

    [Fact(Timeout = 180_000)]
    public async Task SettingOffKeepsBase()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var logs = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(Options(broker.BootstrapServers, trainFromPin: false, ReplayStrategy.Naive), logs);
            learner.Start();
            await PublishThreeVersionsAndPin(broker, learner, pinned: 2);

            LearnerHarness.Produce(broker.BootstrapServers, Topic, Chunk(3), "mixed");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 5);
            learner.Stop(TimeSpan.FromSeconds(10));

            Load(learner.Store, 5).Manifest.ParentVersion.ShouldBe(4);
            logs.Logger.Records.ShouldNotContain(record => record.EventId == TrainFromPinEventId);
        });
    }

    [Theory(Timeout = 180_000)]
    [InlineData(4, false)]
    [InlineData(2, true)]
    public async Task PinOfBaseOrCorruptVersionKeepsBase(long pinned, bool corrupt)
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var logs = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(Options(broker.BootstrapServers, trainFromPin: true, ReplayStrategy.Naive), logs);
            learner.Start();
            await PublishThreeVersionsAndPin(broker, learner, pinned);
            if (corrupt)
            {
                // Version 2's weights file no longer matches the SHA-256 in its manifest.
                File.WriteAllBytes(Path.Combine(learner.Store.VersionDirectory(2), ModelStore.WeightsFileName), [1, 2, 3]);
            }

            LearnerHarness.Produce(broker.BootstrapServers, Topic, Chunk(3), "mixed");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 5);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, HeldOutOnly("probe"), "probe");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 6);
            learner.Stop(TimeSpan.FromSeconds(10));

            Load(learner.Store, 5).Manifest.ParentVersion.ShouldBe(4);
            Load(learner.Store, 6).Manifest.ParentVersion.ShouldBe(5);
            logs.Logger.Records.ShouldNotContain(record => record.EventId == TrainFromPinEventId);
            logs.Logger.Records.Count(record => record.EventId == PinnedVersionUnusableEventId).ShouldBe(corrupt ? 1 : 0, "the warning comes once per pin");
        });
    }

    [Fact(Timeout = 180_000)]
    public async Task RestartStartsFromPinOnce()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers, trainFromPin: true, ReplayStrategy.Naive);
            using (var learner = new ContinualLearner(options, new RecordingLoggerFactory()))
            {
                learner.Start();
                await PublishThreeVersionsAndPin(broker, learner, pinned: 2);
                learner.Stop(TimeSpan.FromSeconds(10));
            }

            using (var restarted = new ContinualLearner(options, new RecordingLoggerFactory()))
            {
                restarted.Start().Number.ShouldBe(2);
                LearnerHarness.Produce(broker.BootstrapServers, Topic, HeldOutOnly("probe"), "probe");
                await LearnerHarness.WaitUntilAsync(() => restarted.Status.LatestVersion == 5);
                restarted.Stop(TimeSpan.FromSeconds(10));
                Load(restarted.Store, 5).Manifest.ParentVersion.ShouldBe(2);
                SameWeights(Load(restarted.Store, 5), Load(restarted.Store, 2)).ShouldBeTrue();
            }

            // Version 5 was trained from the pin after it was written, so a second restart keeps it as the base.
            var logs = new RecordingLoggerFactory();
            using var again = new ContinualLearner(options, logs);
            again.Start().Number.ShouldBe(5);
            again.Stop(TimeSpan.FromSeconds(10));
            logs.Logger.Records.ShouldNotContain(record => record.EventId == TrainFromPinEventId);
        });
    }

    [Fact(Timeout = 180_000)]
    public async Task AnalyticTrainsFromPinnedCheckpoint()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var logs = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(Options(broker.BootstrapServers, trainFromPin: true, ReplayStrategy.Analytic), logs);
            learner.Start();

            // The two retained checkpoints are those of versions 3 and 4, so version 3's sums are on disk.
            await PublishThreeVersionsAndPin(broker, learner, pinned: 3);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Chunk(3), "mixed");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 3 && learner.Status.HeldOut == HeldOutOfChunks(4));
            LearnerHarness.Produce(broker.BootstrapServers, Topic, HeldOutOnly("probe"), "probe");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 5);
            learner.Stop(TimeSpan.FromSeconds(10));

            ModelVersion next = Load(learner.Store, 5);
            next.Manifest.ParentVersion.ShouldBe(3);
            next.Manifest.ExamplesTrained.ShouldBe(Load(learner.Store, 3).Manifest.ExamplesTrained);
            // Each round calibrates the head's temperature on the holdout sets, so the heads are compared up to a scale.
            HeadDistance(next, Load(learner.Store, 3)).ShouldBeLessThan(1e-3, "the head is fitted again from version 3's sums, and the probe round adds none");
            HeadDistance(next, Load(learner.Store, 4)).ShouldBeGreaterThan(1e-2);
            logs.Logger.Records.ShouldNotContain(record => record.EventId == AnalyticKeptEventId);
        });
    }

    [Fact(Timeout = 180_000)]
    public async Task AnalyticWithoutCheckpointKeepsBase()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var logs = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(Options(broker.BootstrapServers, trainFromPin: true, ReplayStrategy.Analytic), logs);
            learner.Start();
            await PublishThreeVersionsAndPin(broker, learner, pinned: 2);

            LearnerHarness.Produce(broker.BootstrapServers, Topic, Chunk(3), "mixed");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 5);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, HeldOutOnly("probe"), "probe");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 6);
            learner.Stop(TimeSpan.FromSeconds(10));

            Load(learner.Store, 5).Manifest.ParentVersion.ShouldBe(4);
            Load(learner.Store, 6).Manifest.ParentVersion.ShouldBe(5);
            logs.Logger.Records.Count(record => record.EventId == AnalyticKeptEventId && record.Level == LogLevel.Warning).ShouldBe(1, "the warning comes once per pin");
            logs.Logger.Records.ShouldNotContain(record => record.EventId == TrainFromPinEventId);
        });
    }

    /// <summary>Trains chunks 0, 1 and 2 of task 1 into versions 2, 3 and 4, then pins <paramref name="pinned"/> as a rollback does.</summary>
    private async Task PublishThreeVersionsAndPin(EmbeddedKafkaBroker broker, ContinualLearner learner, long pinned)
    {
        for (int chunk = 0; chunk < 3; chunk++)
        {
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Chunk(chunk), "mixed");
            int version = chunk + 2;
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == version, $"version {version} was not published");
        }

        StoreControlFiles.WritePinnedVersion(storeDirectory.Path, pinned);
    }

    private LearnerOptions Options(string bootstrapServers, bool trainFromPin, ReplayStrategy strategy)
    {
        LearnerOptions options = LearnerHarness.Options(
            bootstrapServers, Topic, GroupId, storeDirectory.Path, new TrainerOptions { Strategy = strategy }, hiddenSize: 64);
        options.Promotion = new PromotionOptions { MaxForgetting = 0.3, MaxAverageAccuracyDrop = 0.1 };
        options.TrainFromPin = trainFromPin;
        return options;
    }

    private static int[] Chunk(int chunk) => TaskOne[(chunk * ChunkSize)..((chunk + 1) * ChunkSize)];

    private static long HeldOutOfChunks(int count) =>
        Enumerable.Range(0, count).Sum(chunk => Chunk(chunk).Count(index => Router.IsHoldout(TestData.ExampleId("mixed", index))));

    // Examples of task 1 whose ids route them to holdout, so that a round trains none of them.
    private static int[] HeldOutOnly(string prefix) =>
        TaskOne.Where(index => Router.IsHoldout(TestData.ExampleId(prefix, index))).Take(20).ToArray();

    private static ModelVersion Load(ModelStore store, long number)
    {
        store.TryLoad(number, out ModelVersion? version).ShouldBeTrue($"version {number} is in the store");
        return version!;
    }

    /// <summary>
    /// Returns the largest difference between the rows of task 1's classes (0 and 1) in the heads of <paramref name="left"/>
    /// and <paramref name="right"/>, after the least-squares scale from the right head to the left one, relative to the right head's largest value.
    /// </summary>
    private static double HeadDistance(ModelVersion left, ModelVersion right)
    {
        using var scope = torch.NewDisposeScope();
        using nn.Module<Tensor, Tensor> leftModule = left.LoadModule(CPU);
        using nn.Module<Tensor, Tensor> rightModule = right.LoadModule(CPU);
        Tensor leftHead = Head(leftModule.state_dict());
        Tensor rightHead = Head(rightModule.state_dict());
        double scale = leftHead.mul(rightHead).sum().item<double>() / rightHead.mul(rightHead).sum().item<double>();
        return leftHead.div(scale).sub(rightHead).abs().max().item<double>() / rightHead.abs().max().item<double>();
    }

    private static Tensor Head(Dictionary<string, Tensor> weights) =>
        torch.cat([weights["layers.head.weight"], weights["layers.head.bias"].unsqueeze(1)], 1)
            .to(ScalarType.Float64)
            .index_select(0, torch.tensor(new long[] { 0, 1 }));

    private static bool SameWeights(ModelVersion left, ModelVersion right)
    {
        using var scope = torch.NewDisposeScope();
        using nn.Module<Tensor, Tensor> leftModule = left.LoadModule(CPU);
        using nn.Module<Tensor, Tensor> rightModule = right.LoadModule(CPU);
        return leftModule.parameters().Zip(rightModule.parameters())
            .All(pair => pair.First.data<float>().ToArray().SequenceEqual(pair.Second.data<float>().ToArray()));
    }
}
