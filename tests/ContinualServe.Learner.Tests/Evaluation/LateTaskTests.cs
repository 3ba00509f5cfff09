using ContinualServe.Learner.Holdout;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Telemetry;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Evaluation;

/// <summary>
/// Examples of a task lower than the current one: a task without a column in the accuracy matrix is trained, holdout
/// share included, and reported, while a task that was the current one before keeps its holdout set.
/// </summary>
public sealed class LateTaskTests : IDisposable
{
    private const string Topic = "late-task";
    private const int LateTaskEvent = 286;
    private const double HoldoutFraction = 0.5;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-late-task-");

    public void Dispose() => storeDirectory.Dispose();

    // A learner whose group starts at task 3 reads task 1 afterwards. Task 1 never gets a column, so its holdout share
    // is trained instead of being kept in a holdout set that the accuracy matrix and the gate never use.
    [Fact(Timeout = 120_000)]
    public async Task LowerTaskIsTrainedAndReported()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "current", task: 3);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(100, 100), "late", task: 1);
            double lateBefore = ContinualServeMetrics.LearnerExamples.WithLabels("late_task").Value;
            var loggerFactory = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(Options(broker.BootstrapServers), loggerFactory);

            learner.Start();
            await LearnerHarness.WaitUntilAsync(
                () => learner.Status.Trained + learner.Status.HeldOut == 200, "the 200 examples were not in a published version in time");
            learner.Stop(TimeSpan.FromSeconds(10));

            LearnerStatus status = learner.Status;
            status.HeldOut.ShouldBe(HeldOutCount("current", Enumerable.Range(0, 100)));
            status.AccuracyByTask.Keys.ToArray().ShouldBe(new[] { 3 });
            (ContinualServeMetrics.LearnerExamples.WithLabels("late_task").Value - lateBefore).ShouldBeGreaterThanOrEqualTo(100);
            LogRecord warning = loggerFactory.Logger.Records.Where(record => record.EventId == LateTaskEvent).ShouldHaveSingleItem();
            warning.Message.ShouldContain("example of task 1 at ");
            warning.Message.ShouldContain($"{Topic} [[0]] @100");
            warning.Message.ShouldContain("task 3 is the current one");
        });
    }

    // Task 1 read again after task 2 started keeps its column, so its holdout share is kept and evaluated as before.
    [Fact(Timeout = 120_000)]
    public async Task EarlierCurrentTaskKeepsHoldout()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "first", task: 1);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(100, 100), "second", task: 2);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(200, 100), "again", task: 1);
            var loggerFactory = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(Options(broker.BootstrapServers), loggerFactory);

            learner.Start();
            await LearnerHarness.WaitUntilAsync(
                () => learner.Status.Trained + learner.Status.HeldOut == 300, "the 300 examples were not in a published version in time");
            learner.Stop(TimeSpan.FromSeconds(10));

            long expectedHeldOut = HeldOutCount("first", Enumerable.Range(0, 100))
                + HeldOutCount("second", Enumerable.Range(100, 100))
                + HeldOutCount("again", Enumerable.Range(200, 100));
            learner.Status.HeldOut.ShouldBe(expectedHeldOut);
            learner.Status.AccuracyByTask.Keys.Order().ToArray().ShouldBe(new[] { 1, 2 });
            loggerFactory.Logger.Records.ShouldNotContain(record => record.EventId == LateTaskEvent);
        });
    }

    private static long HeldOutCount(string prefix, IEnumerable<int> indices)
    {
        var router = new HoldoutRouter(HoldoutFraction);
        return indices.Count(index => router.IsHoldout(TestData.ExampleId(prefix, index)));
    }

    private LearnerOptions Options(string bootstrapServers)
    {
        LearnerOptions options = LearnerHarness.Options(
            bootstrapServers, Topic, "late-task", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 32);
        options.HoldoutFraction = HoldoutFraction;
        options.Promotion.Enabled = false;
        return options;
    }
}
