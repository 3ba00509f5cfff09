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
