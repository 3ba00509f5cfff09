using System.Diagnostics;
using Confluent.Kafka;
using ContinualServe.Learner;
using ContinualServe.Learner.Holdout;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Model.Telemetry;
using Shouldly;
using Xunit;
using Xunit.Abstractions;

namespace ContinualServe.IntegrationTests.Reliability;

/// <summary>
/// Stopping a learner that has an assigned partition: the stop is quick, and a restarted learner continues at the
/// offset the stopped one committed, training each example once.
/// </summary>
public sealed class LearnerStopTests(ITestOutputHelper output)
{
    private const string Topic = "learner-stop-test";

    // On a 2-core machine with the embedded broker these stops took 0.1 to 0.2 s, and a stop that waited for a round
    // in progress took up to 0.8 s. A stop during a group rebalance waits for the rebalance to end
    // (ContinualLearner.LeaveGroup), but these tests run one learner at a time, so no rebalance is in progress.
    private static readonly TimeSpan MaxStopDuration = TimeSpan.FromSeconds(4);

    [Fact]
    public async Task AssignedLearnerStopsQuickly()
    {
        using EmbeddedKafkaBroker broker = LearnerFixture.StartBroker(Topic);
        LearnerOptions options = LearnerFixture.Options(broker.BootstrapServers, Topic, LearnerFixture.TemporaryRoot());
        Produce(broker.BootstrapServers, Topic, 0, 200);

        TimeSpan firstStop;
        using (ContinualLearner learner = LearnerFixture.Create(options))
        {
            learner.Start();
            (await WaitForCheckpointAsync(learner, offset => offset == 200, TimeSpan.FromSeconds(30)))
                .ShouldBeTrue($"the learner reached offset {LearnerFixture.CheckpointOffset(learner)}");
            firstStop = StopAndMeasure(learner);
            learner.Status.IsRunning.ShouldBeFalse();
        }

        output.WriteLine($"stop after 200 records: {firstStop.TotalMilliseconds:F0} ms");
        firstStop.ShouldBeLessThan(MaxStopDuration);
        CommittedOffset(broker.BootstrapServers, options).ShouldBe(200);

        Produce(broker.BootstrapServers, Topic, 200, 100);
        using (ContinualLearner restarted = LearnerFixture.Create(options))
        {
            restarted.Start();
            (await WaitForCheckpointAsync(restarted, offset => offset == 300, TimeSpan.FromSeconds(30)))
                .ShouldBeTrue($"the restarted learner reached offset {LearnerFixture.CheckpointOffset(restarted)}");
            restarted.Status.Consumed.ShouldBe(100);
            TimeSpan secondStop = StopAndMeasure(restarted);
            output.WriteLine($"stop after restart: {secondStop.TotalMilliseconds:F0} ms");
            secondStop.ShouldBeLessThan(MaxStopDuration);
        }

        CommittedOffset(broker.BootstrapServers, options).ShouldBe(300);
        AssertEachIdTrainedOnce(options, 300);
    }

    [Fact]
    public async Task LearnerStoppedMidStreamResumesExactly()
    {
        const string topic = Topic + "-busy";
        using EmbeddedKafkaBroker broker = LearnerFixture.StartBroker(topic);
        LearnerOptions options = LearnerFixture.Options(broker.BootstrapServers, topic, LearnerFixture.TemporaryRoot());
        options.Trainer.StepsPerBatch = 4;
        Produce(broker.BootstrapServers, topic, 0, 1000);

        long stoppedAt;
        using (ContinualLearner learner = LearnerFixture.Create(options))
        {
            learner.Start();
            (await WaitForCheckpointAsync(learner, offset => offset >= 128, TimeSpan.FromSeconds(30)))
                .ShouldBeTrue($"the learner reached offset {LearnerFixture.CheckpointOffset(learner)}");
            TimeSpan stop = StopAndMeasure(learner);
            output.WriteLine($"stop while training: {stop.TotalMilliseconds:F0} ms");
            stop.ShouldBeLessThan(MaxStopDuration);
            stoppedAt = LearnerFixture.CheckpointOffset(learner);
        }

        stoppedAt.ShouldBeLessThan(1000, "the stop must land while records remain");
        CommittedOffset(broker.BootstrapServers, options).ShouldBe(stoppedAt);
        using (ContinualLearner restarted = LearnerFixture.Create(options))
        {
            restarted.Start();
            (await WaitForCheckpointAsync(restarted, offset => offset == 1000, TimeSpan.FromSeconds(60)))
                .ShouldBeTrue($"the restarted learner reached offset {LearnerFixture.CheckpointOffset(restarted)}");
            restarted.Status.Consumed.ShouldBe(1000 - stoppedAt);
        }

        AssertEachIdTrainedOnce(options, 1000);
    }

    [Fact]
    public async Task StopReportsWhetherThreadEnded()
    {
        const string topic = Topic + "-result";
        using EmbeddedKafkaBroker broker = LearnerFixture.StartBroker(topic);
        LearnerOptions options = LearnerFixture.Options(broker.BootstrapServers, topic, LearnerFixture.TemporaryRoot());
        Produce(broker.BootstrapServers, topic, 0, 200);
        using ContinualLearner learner = LearnerFixture.Create(options);
        learner.Start();
        (await WaitForCheckpointAsync(learner, offset => offset >= 64, TimeSpan.FromSeconds(30))).ShouldBeTrue();

        // The thread still has to finish its step and leave the group, which takes longer than no time at all.
        learner.Stop(TimeSpan.Zero).ShouldBeFalse();
        learner.Stop(TimeSpan.FromSeconds(30)).ShouldBeTrue();
        learner.Status.IsRunning.ShouldBeFalse();
        learner.Stop(TimeSpan.Zero).ShouldBeTrue("a stopped learner stops at once");
    }

    [Fact]
    public async Task StoppedLearnerSetsReadyGaugeToZero()
    {
        (EmbeddedKafkaBroker broker, ContinualLearner learner) = await StartReadyLearnerAsync(Topic + "-gauge");
        using var brokerScope = broker;
        using var learnerScope = learner;
        (await LearnerFixture.WaitUntilAsync(() => ReliabilityMetrics.LearnerReady.Value == 1, TimeSpan.FromSeconds(30)))
            .ShouldBeTrue("the running learner did not set the ready gauge");

        learner.Stop(TimeSpan.FromSeconds(30)).ShouldBeTrue();
        learner.IsReady.ShouldBeFalse();
        ReliabilityMetrics.LearnerReady.Value.ShouldBe(0, "a stopped learner is not ready");
    }

    [Fact]
    public async Task DisposeTwiceThenStop()
    {
        (EmbeddedKafkaBroker broker, ContinualLearner learner) = await StartReadyLearnerAsync(Topic + "-dispose");
        using var brokerScope = broker;

        learner.Dispose();
        learner.Dispose();
        learner.Stop(TimeSpan.Zero).ShouldBeTrue("a disposed learner is stopped");
        learner.Status.IsRunning.ShouldBeFalse();
    }

    [Fact]
    public async Task StartAfterStopIsRejected()
    {
        (EmbeddedKafkaBroker broker, ContinualLearner learner) = await StartReadyLearnerAsync(Topic + "-restart");
        using var brokerScope = broker;
        Should.Throw<InvalidOperationException>(() => learner.Start()).Message.ShouldContain("already running");

        learner.Stop(TimeSpan.FromSeconds(30)).ShouldBeTrue();
        Should.Throw<InvalidOperationException>(() => learner.Start()).Message.ShouldContain("cannot be started again");

        learner.Dispose();
        Should.Throw<ObjectDisposedException>(() => learner.Start());
    }

    /// <summary>Starts a learner on an empty topic of a new broker and waits until it is ready. The caller disposes both.</summary>
    private static async Task<(EmbeddedKafkaBroker Broker, ContinualLearner Learner)> StartReadyLearnerAsync(string topic)
    {
        EmbeddedKafkaBroker broker = LearnerFixture.StartBroker(topic);
        ContinualLearner learner = LearnerFixture.Create(LearnerFixture.Options(broker.BootstrapServers, topic, LearnerFixture.TemporaryRoot()));
        learner.Start();
        (await LearnerFixture.WaitUntilAsync(() => learner.IsReady, TimeSpan.FromSeconds(30))).ShouldBeTrue("the learner did not become ready");
        return (broker, learner);
    }

    private static TimeSpan StopAndMeasure(ContinualLearner learner)
    {
        var clock = Stopwatch.StartNew();
        learner.Stop(TimeSpan.FromSeconds(30));
        return clock.Elapsed;
    }

    private static Task<bool> WaitForCheckpointAsync(ContinualLearner learner, Func<long, bool> reached, TimeSpan limit)
        => LearnerFixture.WaitUntilAsync(() => reached(LearnerFixture.CheckpointOffset(learner)), limit);

    /// <summary>Asserts that the training log lists each non-holdout id of records 0 to count - 1 once.</summary>
    private static void AssertEachIdTrainedOnce(LearnerOptions options, int count)
    {
        IReadOnlyList<string> trained = LearnerFixture.TrainingLogIds(options);
        string[] repeated = trained.GroupBy(id => id)
            .Where(group => group.Count() > 1)
            .Select(group => group.Key)
            .ToArray();
        repeated.ShouldBeEmpty("examples trained more than once");
        string[] expected = Enumerable.Range(0, count)
            .Select(TestIds.Train)
            .Where(id => !new HoldoutRouter(0.1).IsHoldout(id))
            .Order(StringComparer.Ordinal)
            .ToArray();
        trained.Order(StringComparer.Ordinal).ToArray().ShouldBe(expected);
    }

    private static void Produce(string bootstrapServers, string topic, int start, int count)
    {
        var config = new ProducerConfig { BootstrapServers = bootstrapServers, LingerMs = 5 };
        using IProducer<string, byte[]> producer = new ProducerBuilder<string, byte[]>(config).Build();
        for (int index = start; index < start + count; index++)
        {
            string id = TestIds.Train(index);
            int label = LearnerFixture.Training.Labels[index] % 2;
            byte[] record = ExampleRecordCodec.Encode(id, 1, label, LearnerFixture.Training.Image(index));
            producer.Produce(topic, new Message<string, byte[]> { Key = id, Value = record });
        }

        producer.Flush(TimeSpan.FromSeconds(10)).ShouldBe(0);
    }

    /// <summary>Returns the group's committed offset on partition 0, read without joining the group.</summary>
    private static long CommittedOffset(string bootstrapServers, LearnerOptions options)
    {
        using IConsumer<byte[], byte[]> consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = options.GroupId,
        }).Build();
        return consumer.Committed([new TopicPartition(options.Topic, 0)], TimeSpan.FromSeconds(10))[0].Offset.Value;
    }
}
