using Confluent.Kafka;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using Shouldly;

namespace ContinualServe.Learner.Tests;

/// <summary>Settings and waits shared by the tests that run a <see cref="ContinualLearner"/> against the embedded broker.</summary>
internal static class LearnerHarness
{
    public static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Options for a small, fast learner: a one-hidden-layer MLP on the CPU, a 3 s session and a round only when
    /// the stream goes idle for 500 ms.
    /// </summary>
    public static LearnerOptions Options(string bootstrapServers, string topic, string groupId, string storeDirectory, TrainerOptions trainer, int hiddenSize) => new()
    {
        BootstrapServers = bootstrapServers,
        Topic = topic,
        GroupId = groupId,
        StoreDirectory = storeDirectory,
        SessionTimeout = TimeSpan.FromSeconds(3),
        RoundExamples = 1_000_000,
        IdleRoundDelay = TimeSpan.FromMilliseconds(500),
        Device = "cpu",
        InitialSpec = new ModelSpec { InputShape = [784], HiddenSizes = [hiddenSize] },
        Trainer = trainer,
    };

    /// <summary>Starts an embedded broker with <paramref name="topic"/> and its dead-letter topic, one partition each.</summary>
    public static EmbeddedKafkaBroker StartBroker(string topic)
    {
        EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(topic, partitionCount: 1);
        broker.CreateTopic(topic + ".dlq", partitionCount: 1);
        return broker;
    }

    /// <summary>
    /// Sends the training slice's images at <paramref name="indices"/> to <paramref name="topic"/>, keyed by the id
    /// <paramref name="prefix"/>-index, in task <paramref name="task"/>, labelled by <paramref name="label"/> (the true label when null).
    /// </summary>
    public static void Produce(string bootstrapServers, string topic, IEnumerable<int> indices, string prefix, int task = 1, Func<int, int>? label = null)
    {
        using IProducer<byte[], byte[]> producer = new ProducerBuilder<byte[], byte[]>(KafkaDefaults.CreateProducerConfig(bootstrapServers)).Build();
        foreach (int index in indices)
        {
            string id = TestData.ExampleId(prefix, index);
            int recordLabel = label?.Invoke(index) ?? TestData.TrainingSet.Labels[index];
            byte[] value = ExampleRecordCodec.Encode(id, task, recordLabel, TestData.TrainingSet.Image(index));
            producer.Produce(topic, new Message<byte[], byte[]> { Key = System.Text.Encoding.UTF8.GetBytes(id), Value = value });
        }

        producer.Flush(TimeSpan.FromSeconds(20));
    }

    /// <summary>Polls <paramref name="condition"/> every 100 ms and fails the test with <paramref name="failure"/> after <see cref="WaitLimit"/>.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, string failure = "the learner did not reach the expected state in time")
    {
        DateTime deadline = DateTime.UtcNow + WaitLimit;
        while (!condition())
        {
            DateTime.UtcNow.ShouldBeLessThan(deadline, failure);
            await Task.Delay(100);
        }
    }
}
