using ContinualServe.Learner.Data;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Restarts;

/// <summary>Restarts that switch the training strategy or the checkpoint directory on a trained store.</summary>
public sealed class StrategySwitchRestartTests : IDisposable
{
    private const string Topic = "strategy-switch-examples";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-strategy-switch-");

    public void Dispose() => storeDirectory.Dispose();

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

    [Fact(Timeout = 120_000)]
    public async Task EmptyCheckpointDirectoryWarns()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            int[] taskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();
            _ = await TrainFirstVersionAsync(broker.BootstrapServers, taskOne[..150]);
            LearnerOptions moved = Options(broker.BootstrapServers, ReplayStrategy.DerPlusPlus);
            moved.Checkpoint.Directory = Path.Combine(storeDirectory.Path, "other-checkpoints");
            var loggerFactory = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(moved, loggerFactory);

            learner.Start();
            LearnerHarness.Produce(broker.BootstrapServers, Topic, taskOne[150..214], "second");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 3);
            learner.Stop(TimeSpan.FromSeconds(10));

            learner.Status.Consumed.ShouldBe(64, "the version's manifest offsets replace the missing checkpoint's");
            string warning = loggerFactory.Logger.Messages.Single(message => message.Contains("no intact learner checkpoint", StringComparison.Ordinal));
            warning.ShouldContain(moved.Checkpoint.Directory);
            warning.ShouldContain("version 2 was trained on");
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
            bootstrapServers, Topic, "strategy-switch", storeDirectory.Path, new TrainerOptions { Strategy = strategy, ReplayCapacity = 200 }, hiddenSize: 32);
        options.Promotion.Enabled = false;
        return options;
    }
}
