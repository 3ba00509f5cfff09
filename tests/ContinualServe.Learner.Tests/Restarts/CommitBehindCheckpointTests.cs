using Confluent.Kafka;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Restarts;

/// <summary>
/// A restart whose group has committed less than the checkpoint contains, as after a kill between the checkpoint and
/// the offset commit. The embedded broker rejects a commit from outside the group, so the restart takes a new group.
/// </summary>
public sealed class CommitBehindCheckpointTests : IDisposable
{
    private const string Topic = "commit-behind-checkpoint";
    private const string Group = "commit-behind-checkpoint-learner";
    private const string RestartedGroup = "commit-behind-checkpoint-restarted";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-commit-behind-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task StopCommitsCheckpointOffsets()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            int[] taskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();
            using (var first = new ContinualLearner(Options(broker.BootstrapServers, Group), NullLoggerFactory.Instance))
            {
                first.Start();
                LearnerHarness.Produce(broker.BootstrapServers, Topic, taskOne[..150], "first");
                await LearnerHarness.WaitUntilAsync(() => first.Status.LatestVersion == 2);
                first.Stop(TimeSpan.FromSeconds(10));
            }

            CommittedOffset(broker.BootstrapServers, Group).ShouldBe(150);

            using var restarted = new ContinualLearner(Options(broker.BootstrapServers, RestartedGroup), NullLoggerFactory.Instance);
            restarted.Start();

            // An invalid record shows that the partition is assigned and read, and it starts no round, so no round commits.
            ProduceInvalidRecord(broker.BootstrapServers);
            await LearnerHarness.WaitUntilAsync(() => restarted.Status.Invalid == 1, "the restarted learner did not read the invalid record");
            restarted.Stop(TimeSpan.FromSeconds(10));

            restarted.Status.Position.ShouldBe(151, "the restarted learner reads on from the checkpoint's offset");
            CommittedOffset(broker.BootstrapServers, RestartedGroup).ShouldBe(150, "a stop commits the offsets of the newest checkpoint");
        });
    }

    private LearnerOptions Options(string bootstrapServers, string group)
    {
        LearnerOptions options = LearnerHarness.Options(
            bootstrapServers, Topic, group, storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 32);
        options.Promotion.Enabled = false;
        return options;
    }

    private static void ProduceInvalidRecord(string bootstrapServers)
    {
        using IProducer<byte[], byte[]> producer = new ProducerBuilder<byte[], byte[]>(KafkaDefaults.CreateProducerConfig(bootstrapServers)).Build();
        producer.Produce(Topic, new Message<byte[], byte[]> { Key = "invalid"u8.ToArray(), Value = "not a record"u8.ToArray() });
        producer.Flush(TimeSpan.FromSeconds(10)).ShouldBe(0);
    }

    // Returns the group's committed offset on partition 0, read without joining the group.
    private static long CommittedOffset(string bootstrapServers, string group)
    {
        using IConsumer<byte[], byte[]> consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = group,
        }).Build();
        return consumer.Committed([new TopicPartition(Topic, 0)], TimeSpan.FromSeconds(10))[0].Offset.Value;
    }
}
