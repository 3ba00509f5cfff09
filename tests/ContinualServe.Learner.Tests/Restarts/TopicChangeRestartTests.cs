using ContinualServe.Learner.Data;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Restarts;

/// <summary>Restarts that change Learner:Topic or Learner:GroupId on a store trained from another topic or group.</summary>
public sealed class TopicChangeRestartTests : IDisposable
{
    private const string FirstTopic = "topic-change-first";
    private const string SecondTopic = "topic-change-second";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-topic-change-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task NewTopicWarnsAndReadsAll()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(FirstTopic);
            broker.CreateTopic(SecondTopic, partitionCount: 1);
            broker.CreateTopic(SecondTopic + ".dlq", partitionCount: 1);
            int[] taskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();
            await TrainFirstVersionAsync(broker.BootstrapServers, taskOne[..150]);
            LearnerOptions moved = Options(broker.BootstrapServers, "topic-change");
            moved.Topic = SecondTopic;
            var loggerFactory = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(moved, loggerFactory);

            learner.Start();
            LearnerHarness.Produce(broker.BootstrapServers, SecondTopic, taskOne[150..214], "second");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 3);
            learner.Stop(TimeSpan.FromSeconds(10));

            learner.Status.Consumed.ShouldBe(64);
            string[] warnings = loggerFactory.Logger.Entries
                .Where(entry => entry.Level == LogLevel.Warning && entry.Message.Contains("but none of", StringComparison.Ordinal))
                .Select(entry => entry.Message)
                .ToArray();
            warnings.Length.ShouldBe(1);
            warnings[0].ShouldContain(FirstTopic);
            warnings[0].ShouldContain(SecondTopic + " [[0]]");
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task NewGroupResumesAtCheckpoint()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(FirstTopic);
            int[] taskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();
            await TrainFirstVersionAsync(broker.BootstrapServers, taskOne[..150]);
            var loggerFactory = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(Options(broker.BootstrapServers, "topic-change-other-group"), loggerFactory);

            learner.Start();
            LearnerHarness.Produce(broker.BootstrapServers, FirstTopic, taskOne[150..214], "second");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 3);
            learner.Stop(TimeSpan.FromSeconds(10));

            learner.Status.Consumed.ShouldBe(64, "the checkpoint's offsets win over the new group's missing commits");
            loggerFactory.Logger.Messages.ShouldNotContain(message => message.Contains("but none of", StringComparison.Ordinal));
        });
    }

    private async Task TrainFirstVersionAsync(string bootstrapServers, int[] indices)
    {
        using var learner = new ContinualLearner(Options(bootstrapServers, "topic-change"), NullLoggerFactory.Instance);
        learner.Start();
        LearnerHarness.Produce(bootstrapServers, FirstTopic, indices, "first");
        await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2);
        learner.Stop(TimeSpan.FromSeconds(10));
    }

    private LearnerOptions Options(string bootstrapServers, string groupId)
    {
        LearnerOptions options = LearnerHarness.Options(
            bootstrapServers, FirstTopic, groupId, storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 32);
        options.Promotion.Enabled = false;
        return options;
    }
}
