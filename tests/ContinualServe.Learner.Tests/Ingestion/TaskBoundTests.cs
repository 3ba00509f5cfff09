using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Ingestion;

/// <summary>
/// Records whose task is above Learner:MaxTask or more than Learner:MaxTaskJump above the current task go to the
/// dead-letter topic, so that one wrong task number cannot make every later task late.
/// </summary>
public sealed class TaskBoundTests : IDisposable
{
    private const string Topic = "task-bound";
    private const int InvalidRecordEvent = 205;
    private const int LateTaskEvent = 286;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-task-bound-");

    public void Dispose() => storeDirectory.Dispose();

    // The group starts at task 3, two records with wrong task numbers follow, then task 4. After a restart task 5 continues.
    [Fact(Timeout = 180_000)]
    public async Task OutlyingTasksAreDeadLettered()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 50), "third", task: 3);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, [50], "beyond-maximum", task: int.MaxValue);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, [51], "far-jump", task: 500);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(52, 50), "fourth", task: 4);
            var loggerFactory = new RecordingLoggerFactory();
            using (var learner = new ContinualLearner(Options(broker.BootstrapServers), loggerFactory))
            {
                learner.Start();
                await LearnerHarness.WaitUntilAsync(
                    () => learner.Status.Consumed == 102 && learner.Status.Trained + learner.Status.HeldOut >= 100,
                    "the 102 records were not in a published version in time");
                learner.Stop(TimeSpan.FromSeconds(10));

                learner.Status.Invalid.ShouldBe(2);
                (learner.Status.Trained + learner.Status.HeldOut).ShouldBe(100);
                learner.Status.CurrentTask.ShouldBe(4);
                learner.Status.AccuracyByTask.Keys.Order().ToArray().ShouldBe(new[] { 3, 4 });
            }

            string[] reasons = loggerFactory.Logger.Records.Where(record => record.EventId == InvalidRecordEvent).Select(record => record.Message).ToArray();
            reasons.Length.ShouldBe(2);
            reasons[0].ShouldContain("field 'task' is 2147483647; the maximum is 1000 (Learner:MaxTask)");
            reasons[1].ShouldContain("field 'task' is 500, more than Learner:MaxTaskJump (10) above the current task 3");
            loggerFactory.Logger.Records.ShouldNotContain(record => record.EventId == LateTaskEvent);

            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(102, 50), "fifth", task: 5);
            var restartLogs = new RecordingLoggerFactory();
            using var restarted = new ContinualLearner(Options(broker.BootstrapServers), restartLogs);
            restarted.Start();
            await LearnerHarness.WaitUntilAsync(
                () => restarted.Status.Trained + restarted.Status.HeldOut == 50, "the restarted learner did not publish task 5 in time");
            restarted.Stop(TimeSpan.FromSeconds(10));

            restarted.Status.Invalid.ShouldBe(0);
            restarted.Status.CurrentTask.ShouldBe(5);
            restarted.Status.AccuracyByTask.Keys.Order().ToArray().ShouldBe(new[] { 3, 4, 5 });
        });
    }

    private LearnerOptions Options(string bootstrapServers)
    {
        LearnerOptions options = LearnerHarness.Options(
            bootstrapServers, Topic, "task-bound", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 32);
        options.Promotion.Enabled = false;
        return options;
    }
}
