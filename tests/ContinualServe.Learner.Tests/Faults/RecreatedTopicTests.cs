using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// A learner whose checkpoint comes from a topic with more records than the topic it now reads: the embedded broker
/// keeps nothing on disk, so a second broker plays a topic that was deleted and created again.
/// </summary>
public sealed class RecreatedTopicTests : IDisposable
{
    private const string Topic = "recreated-examples";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-recreated-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task PositionPastEndIsReported()
    {
        await Task.Run(async () =>
        {
            using (EmbeddedKafkaBroker first = LearnerHarness.StartBroker(Topic))
            {
                LearnerHarness.Produce(first.BootstrapServers, Topic, Enumerable.Range(0, 300), "first");
                using var learner = new ContinualLearner(Options(first.BootstrapServers), new RecordingLoggerFactory(new RecordingLogger()));
                learner.Start();
                await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 300, "the first learner did not finish the first topic");
                learner.Stop(TimeSpan.FromSeconds(10));
            }

            using EmbeddedKafkaBroker second = LearnerHarness.StartBroker(Topic);
            LearnerHarness.Produce(second.BootstrapServers, Topic, Enumerable.Range(300, 100), "second");
            var logger = new RecordingLogger();
            using var restarted = new ContinualLearner(Options(second.BootstrapServers), new RecordingLoggerFactory(logger));
            restarted.Start();
            await LearnerHarness.WaitUntilAsync(() => restarted.Status.RoundPosition == 100, "the restarted learner did not read the new topic");
            restarted.Stop(TimeSpan.FromSeconds(10));

            logger.Entries.ShouldContain(
                entry => entry.Level == LogLevel.Error && entry.Message.Contains("position 300 on", StringComparison.Ordinal)
                    && entry.Message.Contains("is past the partition's end (100)", StringComparison.Ordinal),
                "a checkpoint position past the topic's end must be reported, not skipped silently");
            restarted.Status.Lost.ShouldBe(0);
        });
    }

    private LearnerOptions Options(string bootstrapServers) => LearnerHarness.Options(
        bootstrapServers, Topic, "recreated-test", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
}
