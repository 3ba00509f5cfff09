using ContinualServe.Learner.Data;
using ContinualServe.Learner.Holdout;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Promotion;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Pins;

/// <summary>
/// Learner:TrainFromPin against the embedded broker. The learner publishes versions 2 to 4 from task 1, an operator pins
/// version 2, and the learner goes on. The round after the pin trains on a mix of examples; the round after that only
/// adds holdout examples, so its candidate has exactly the weights of the version it trains from.
/// </summary>
public sealed class TrainFromPinTests : IDisposable
{
    private const string Topic = "pin-examples";
    private const int TrainFromPinEventId = 281;
    private const int AnalyticKeptEventId = 283;

    private static readonly HoldoutRouter Router = new(0.1);
    private static readonly int[] TaskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();
    private static readonly int ChunkSize = TaskOne.Length / 4;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-learner-pin-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 180_000)]
    public async Task NextVersionDescendsFromThePinnedVersion()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var logs = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(Options(broker.BootstrapServers, trainFromPin: true, ReplayStrategy.Naive), logs);
            learner.Start();
            await PublishThreeVersionsAndPinTheFirst(broker, learner);

            // The round after the pin trains on the base, version 4, and is discarded; the learner then trains from version 2.
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Chunk(3), "mixed");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2 && learner.Status.HeldOut == HeldOutOfChunks(4));
            LearnerHarness.Produce(broker.BootstrapServers, Topic, HeldOutOnly("probe"), "probe");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 5);
            learner.Stop(TimeSpan.FromSeconds(10));

            ModelVersion next = Load(learner.Store, 5);
            next.Manifest.ParentVersion.ShouldBe(2);
            next.Manifest.ExamplesTrained.ShouldBe(Load(learner.Store, 2).Manifest.ExamplesTrained, "the examples trained on version 4 after the pin were discarded");
            SameWeights(next, Load(learner.Store, 2)).ShouldBeTrue("the probe round trains nothing, so version 5 has version 2's weights");
            SameWeights(next, Load(learner.Store, 4)).ShouldBeFalse();
            logs.Logger.Records.Count(record => record.EventId == TrainFromPinEventId).ShouldBe(1);
            logs.Logger.Records.Single(record => record.EventId == TrainFromPinEventId).Message.ShouldContain("instead of version 4");
        });
    }

    [Fact(Timeout = 180_000)]
    public async Task WithoutTheSettingThePinChangesNothing()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var logs = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(Options(broker.BootstrapServers, trainFromPin: false, ReplayStrategy.Naive), logs);
            learner.Start();
            await PublishThreeVersionsAndPinTheFirst(broker, learner);

            LearnerHarness.Produce(broker.BootstrapServers, Topic, Chunk(3), "mixed");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 5);
            learner.Stop(TimeSpan.FromSeconds(10));

            Load(learner.Store, 5).Manifest.ParentVersion.ShouldBe(4);
            logs.Logger.Records.ShouldNotContain(record => record.EventId == TrainFromPinEventId);
        });
    }

    [Fact(Timeout = 180_000)]
    public async Task RestartUnderThePinStartsFromItOnce()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers, trainFromPin: true, ReplayStrategy.Naive);
            using (var learner = new ContinualLearner(options, new RecordingLoggerFactory()))
            {
                learner.Start();
                await PublishThreeVersionsAndPinTheFirst(broker, learner);
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
    public async Task AnalyticStrategyKeepsItsBaseWithAWarning()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var logs = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(Options(broker.BootstrapServers, trainFromPin: true, ReplayStrategy.Analytic), logs);
            learner.Start();
            await PublishThreeVersionsAndPinTheFirst(broker, learner);

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

    /// <summary>Trains chunks 0, 1 and 2 of task 1 into versions 2, 3 and 4, then pins version 2 as a rollback does.</summary>
    private async Task PublishThreeVersionsAndPinTheFirst(EmbeddedKafkaBroker broker, ContinualLearner learner)
    {
        for (int chunk = 0; chunk < 3; chunk++)
        {
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Chunk(chunk), "mixed");
            int version = chunk + 2;
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == version, $"version {version} was not published");
        }

        StoreControlFiles.WritePinnedVersion(storeDirectory.Path, 2);
    }

    private LearnerOptions Options(string bootstrapServers, bool trainFromPin, ReplayStrategy strategy)
    {
        LearnerOptions options = LearnerHarness.Options(
            bootstrapServers, Topic, "pin-test", storeDirectory.Path, new TrainerOptions { Strategy = strategy }, hiddenSize: 64);
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

    private static bool SameWeights(ModelVersion left, ModelVersion right)
    {
        using var scope = torch.NewDisposeScope();
        using nn.Module<Tensor, Tensor> leftModule = left.LoadModule(CPU);
        using nn.Module<Tensor, Tensor> rightModule = right.LoadModule(CPU);
        return leftModule.parameters().Zip(rightModule.parameters())
            .All(pair => pair.First.data<float>().ToArray().SequenceEqual(pair.Second.data<float>().ToArray()));
    }
}
