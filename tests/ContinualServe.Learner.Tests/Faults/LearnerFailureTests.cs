using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// A learner whose checkpoint write fails mid-run. A regular file takes the place of its checkpoint directory, so the
/// write fails as it would on a full or read-only volume, even for root.
/// </summary>
public sealed class LearnerFailureTests : IDisposable
{
    private const string Topic = "failure-examples";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-failure-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task FailedCheckpointWriteStopsLearner()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            string checkpoints = Path.Combine(storeDirectory.Path, "checkpoints");
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "failure-test", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            options.Checkpoint.Directory = checkpoints;
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            var failures = new List<Exception>();
            learner.Failed += failure =>
            {
                lock (failures)
                {
                    failures.Add(failure);
                }
            };
            learner.Start();
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "before");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100, "the first round was not published");

            Directory.Delete(checkpoints, recursive: true);
            await File.WriteAllTextAsync(checkpoints, "a file where the checkpoint directory was");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(100, 100), "after");
            await LearnerHarness.WaitUntilAsync(() => learner.Failure is not null, "the learner did not stop on the failed checkpoint write");

            learner.Status.IsRunning.ShouldBeFalse();
            learner.Status.RoundPosition.ShouldBe(100, "the failed round's offsets must not be committed");
            await LearnerHarness.WaitUntilAsync(() => FailureCount(failures) == 1, "Failed was not raised");
            failures[0].ShouldBeSameAs(learner.Failure);
            loggers.Logger.Entries.ShouldContain(entry => entry.Level == LogLevel.Critical
                && entry.Message.StartsWith("The learner stopped on an error it does not handle", StringComparison.Ordinal));
        });
    }

    private static int FailureCount(List<Exception> failures)
    {
        lock (failures)
        {
            return failures.Count;
        }
    }
}
