using Confluent.Kafka;
using ContinualServe.Learner;
using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Holdout;
using ContinualServe.Learner.Kafka;
using Microsoft.Extensions.Logging.Abstractions;

namespace ContinualServe.IntegrationTests.Reliability;

/// <summary>Options, data and waits shared by the tests that run a learner in the test process.</summary>
internal static class LearnerFixture
{
    public static readonly IdxDataset Training = IdxDataset.LoadFashionMnist(Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist"), training: true);

    public static LearnerOptions Options(string bootstrapServers, string topic, string root) => new()
    {
        BootstrapServers = bootstrapServers,
        Topic = topic,
        GroupId = topic + "-learner",
        StoreDirectory = Path.Combine(root, "models"),
        Device = "cpu",
        RoundExamples = 64,
        SessionTimeout = TimeSpan.FromSeconds(3),
        Trainer = { ReplayCapacity = 100 },
        Checkpoint = { WriteTrainingLog = true },

        // These tests count each trained example; a rejected candidate's examples are discarded by design.
        Promotion = { Enabled = false },
    };

    public static ContinualLearner Create(LearnerOptions options) => new(options, NullLoggerFactory.Instance);

    /// <summary>Starts an embedded broker with <paramref name="topic"/> and its dead-letter topic, one partition each.</summary>
    public static EmbeddedKafkaBroker StartBroker(string topic)
    {
        EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(topic, 1);
        broker.CreateTopic(topic + ".dlq", 1);
        return broker;
    }

    public static string TemporaryRoot() => Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));

    /// <summary>The ids of the first <paramref name="tasks"/> tasks that the learner trains on (all but the holdout).</summary>
    public static string[] TrainedIds(int tasks) =>
        SplitTasks.OrderByTask(Training, tasks)
            .Select(TestIds.Train)
            .Where(id => !new HoldoutRouter(0.1).IsHoldout(id))
            .Order(StringComparer.Ordinal)
            .ToArray();

    public static IReadOnlyList<string> TrainingLogIds(LearnerOptions options) =>
        TrainingLog.ReadIds(Path.Combine(options.Checkpoint.ResolveDirectory(options.StoreDirectory), TrainingLog.FileName));

    public static long CheckpointOffset(ContinualLearner learner) =>
        learner.Checkpoint is { Offsets.Count: > 0 } checkpoint ? checkpoint.Offsets[0].Offset : -1;

    public static async Task<bool> WaitUntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (condition())
            {
                return true;
            }

            await Task.Delay(50);
        }

        return condition();
    }

    public static WatermarkOffsets Watermarks(string bootstrapServers, string topic)
    {
        using IConsumer<byte[], byte[]> consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "watermarks-" + Guid.NewGuid().ToString("N"),
        }).Build();
        return consumer.QueryWatermarkOffsets(new TopicPartition(topic, 0), TimeSpan.FromSeconds(10));
    }
}
