using ContinualServe.Learner.Data;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Restarts;

/// <summary>Restarts that switch the training strategy on the same store and checkpoint directory.</summary>
public sealed class StrategySwitchRestartTests : IDisposable
{
    private const string Topic = "strategy-switch-examples";

    private readonly string storeDirectory = Path.Combine(Path.GetTempPath(), "continualserve-strategy-switch-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(storeDirectory))
        {
            Directory.Delete(storeDirectory, recursive: true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task NaiveStintKeepsReplayBuffer()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            int[] taskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();
            int replayCount = await TrainFirstVersionAsync(broker.BootstrapServers, taskOne[..150]);
            replayCount.ShouldBeGreaterThan(100);

            var loggerFactory = new RecordingLoggerFactory();
            using (var naive = new ContinualLearner(Options(broker.BootstrapServers, ReplayStrategy.Naive), loggerFactory))
            {
                naive.Start();
                naive.Status.ReplayExamples.ShouldBe(0, "the naive strategy replays nothing");
                LearnerHarness.Produce(broker.BootstrapServers, Topic, taskOne[150..214], "second");
                await LearnerHarness.WaitUntilAsync(() => naive.Status.LatestVersion == 3);
                naive.Stop(TimeSpan.FromSeconds(10));
            }

            loggerFactory.Logger.Messages.ShouldContain(message => message.Contains($"keeps its {replayCount} replay examples", StringComparison.Ordinal));

            using var replaying = new ContinualLearner(Options(broker.BootstrapServers, ReplayStrategy.DerPlusPlus), NullLoggerFactory.Instance);
            replaying.Start();
            replaying.Stop(TimeSpan.FromSeconds(10));
            replaying.Status.ReplayExamples.ShouldBe(replayCount);
        });
    }

    // Trains version 2 with DER++ and returns the number of examples in the replay buffer it saved.
    private async Task<int> TrainFirstVersionAsync(string bootstrapServers, int[] indices)
    {
        using var learner = new ContinualLearner(Options(bootstrapServers, ReplayStrategy.DerPlusPlus), NullLoggerFactory.Instance);
        learner.Start();
        LearnerHarness.Produce(bootstrapServers, Topic, indices, "first");
        await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2);
        learner.Stop(TimeSpan.FromSeconds(10));
        return learner.Status.ReplayExamples;
    }

    private LearnerOptions Options(string bootstrapServers, ReplayStrategy strategy)
    {
        LearnerOptions options = LearnerHarness.Options(
            bootstrapServers, Topic, "strategy-switch", storeDirectory, new TrainerOptions { Strategy = strategy, ReplayCapacity = 200 }, hiddenSize: 32);
        options.Promotion.Enabled = false;
        return options;
    }
}
