using System.Net;
using System.Net.Http.Json;
using Confluent.Kafka;
using ContinualServe.Learner;
using ContinualServe.Learner.Holdout;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.IntegrationTests.Reliability;

/// <summary>
/// Broker faults against librdkafka's mock cluster. The broker goes down mid-run (rd_kafka_mock_broker_set_down)
/// and comes back (rd_kafka_mock_broker_set_up), and retention deletes records while the learner is stopped or paused.
/// </summary>
public sealed class BrokerFaultTests
{
    [Fact]
    public async Task LearnerResumesAfterBrokerOutage()
    {
        const string topic = "broker-outage-test";
        using EmbeddedKafkaBroker broker = LearnerFixture.StartBroker(topic);
        var producer = new ExampleProducer(broker.BootstrapServers, topic, NullLogger.Instance) { MaxLag = 0, MaxTasks = 2 };
        long produced = await producer.ProduceAsync(LearnerFixture.Training, null, null, CancellationToken.None);
        string root = LearnerFixture.TemporaryRoot();
        LearnerOptions options = LearnerFixture.Options(broker.BootstrapServers, topic, root);

        using (ContinualLearner learner = LearnerFixture.Create(options))
        {
            learner.Start();
            (await LearnerFixture.WaitUntilAsync(() => LearnerFixture.CheckpointOffset(learner) >= 200, TimeSpan.FromSeconds(30))).ShouldBeTrue();
            broker.SetBrokerDown();
            (await LearnerFixture.WaitUntilAsync(() => !learner.IsReady, TimeSpan.FromSeconds(15))).ShouldBeTrue("the learner did not report itself not ready");
            learner.Status.IsBrokerAvailable.ShouldBeFalse();
            await using (RunningStoreServer server = await RunningStoreServer.StartAsync(options.StoreDirectory, options.InitialSpec.Name))
            {
                using HttpResponseMessage response = await server.Client.PostAsJsonAsync(
                    $"v2/models/{options.InitialSpec.Name}/infer",
                    new { inputs = new[] { new { name = "input", datatype = "FP32", shape = new[] { 1, 784 }, data = new float[784] } } });
                response.StatusCode.ShouldBe(HttpStatusCode.OK);
            }

            // Longer than the 3 s session timeout, so the outage also spans a group session expiry.
            await Task.Delay(TimeSpan.FromSeconds(4));
            learner.IsReady.ShouldBeFalse("records fetched before the outage must not mark the broker available");
            broker.SetBrokerUp();
            (await LearnerFixture.WaitUntilAsync(() => LearnerFixture.CheckpointOffset(learner) == produced, TimeSpan.FromSeconds(60)))
                .ShouldBeTrue($"the learner reached offset {LearnerFixture.CheckpointOffset(learner)} of {produced}");

            // The watchdog queries the leader once a second while the broker is marked unavailable, and the learner
            // can finish the remaining records before the next query.
            (await LearnerFixture.WaitUntilAsync(() => learner.IsReady, TimeSpan.FromSeconds(10))).ShouldBeTrue("the learner did not report itself ready again");
        }

        IReadOnlyList<string> trained = LearnerFixture.TrainingLogIds(options);
        trained.GroupBy(id => id).Where(group => group.Count() > 1).Select(group => group.Key).ShouldBeEmpty();
        trained.Order(StringComparer.Ordinal).ToArray().ShouldBe(LearnerFixture.TrainedIds(2));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task OneBrokerOutageMarksNotReady(int downBroker)
    {
        // Broker 1 leads the partition and broker 2 coordinates the group, and only one of them goes down, so librdkafka
        // never reports all brokers down. Without the leader the partition cannot be read. Without the coordinator the
        // learner's session expires and it loses its partition. Only the watchdog's own queries show either.
        string topic = $"broker-{downBroker}-outage-test";
        using EmbeddedKafkaBroker broker = StartWithLeaderOnBrokerOne(topic);
        LearnerOptions options = LearnerFixture.Options(broker.BootstrapServers, topic, LearnerFixture.TemporaryRoot());
        broker.SetGroupCoordinator(options.GroupId, brokerId: 2);
        var producer = new ExampleProducer(broker.BootstrapServers, topic, NullLogger.Instance) { MaxLag = 0, MaxTasks = 2 };
        long produced = await producer.ProduceAsync(LearnerFixture.Training, null, null, CancellationToken.None);

        using (ContinualLearner learner = LearnerFixture.Create(options))
        {
            learner.Start();
            (await LearnerFixture.WaitUntilAsync(() => LearnerFixture.CheckpointOffset(learner) >= 200, TimeSpan.FromSeconds(30))).ShouldBeTrue();
            learner.IsReady.ShouldBeTrue();
            broker.SetBrokerDown(downBroker);

            // Without the coordinator the learner also loses its partition when its session expires, which makes it not
            // ready before the watchdog's checks fail, so the test waits for the watchdog's decision.
            (await LearnerFixture.WaitUntilAsync(() => !learner.Status.IsBrokerAvailable, TimeSpan.FromSeconds(15)))
                .ShouldBeTrue("the watchdog did not report the broker unavailable");
            learner.IsReady.ShouldBeFalse("the learner did not report itself not ready");
            broker.SetBrokerUp(downBroker);
            (await LearnerFixture.WaitUntilAsync(() => LearnerFixture.CheckpointOffset(learner) == produced, TimeSpan.FromSeconds(60)))
                .ShouldBeTrue($"the learner reached offset {LearnerFixture.CheckpointOffset(learner)} of {produced}");
            (await LearnerFixture.WaitUntilAsync(() => learner.IsReady, TimeSpan.FromSeconds(10))).ShouldBeTrue("the learner did not report itself ready again");
        }

        IReadOnlyList<string> trained = LearnerFixture.TrainingLogIds(options);
        trained.GroupBy(id => id).Where(group => group.Count() > 1).Select(group => group.Key).ShouldBeEmpty();
        trained.Order(StringComparer.Ordinal).ToArray().ShouldBe(LearnerFixture.TrainedIds(2));
    }

    [Fact]
    public async Task IdleMemberNotReadyWhenLeaderDown()
    {
        // Two learners share the group and its one partition, so one of them is assigned none. The group coordinator
        // stays up, so only the learners' own watermark queries show that the partition's leader is down.
        const string topic = "idle-member-test";
        using EmbeddedKafkaBroker broker = StartWithLeaderOnBrokerOne(topic);
        LearnerOptions firstOptions = LearnerFixture.Options(broker.BootstrapServers, topic, LearnerFixture.TemporaryRoot());
        LearnerOptions secondOptions = LearnerFixture.Options(broker.BootstrapServers, topic, LearnerFixture.TemporaryRoot());
        broker.SetGroupCoordinator(firstOptions.GroupId, brokerId: 2);

        using ContinualLearner first = LearnerFixture.Create(firstOptions);
        using ContinualLearner second = LearnerFixture.Create(secondOptions);
        first.Start();
        second.Start();
        (await LearnerFixture.WaitUntilAsync(() => first.IsReady && second.IsReady, TimeSpan.FromSeconds(30))).ShouldBeTrue();

        // Longer than the mock's rebalance (about 2 s with the 3 s session), so the partition settles on one learner.
        await Task.Delay(TimeSpan.FromSeconds(4));
        broker.SetBrokerDown(1);

        (await LearnerFixture.WaitUntilAsync(() => !first.IsReady, TimeSpan.FromSeconds(15))).ShouldBeTrue("the first learner stayed ready");
        (await LearnerFixture.WaitUntilAsync(() => !second.IsReady, TimeSpan.FromSeconds(15))).ShouldBeTrue("the second learner stayed ready");
    }

    [Fact]
    public async Task SecondPartitionLeaderOutageMarksNotReady()
    {
        // The learner is assigned both partitions of the topic. Partition 0's leader and the group coordinator stay up, so
        // only a query to partition 1's leader shows that the learner cannot read all of its partitions.
        const string topic = "second-leader-test";
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 3);
        broker.CreateTopic(topic, 2);
        broker.CreateTopic(topic + ".dlq", 1);
        broker.SetPartitionLeader(topic, 0, brokerId: 1);
        broker.SetPartitionLeader(topic, 1, brokerId: 2);
        broker.SetPartitionLeader(topic + ".dlq", 0, brokerId: 1);
        LearnerOptions options = LearnerFixture.Options(broker.BootstrapServers, topic, LearnerFixture.TemporaryRoot());
        broker.SetGroupCoordinator(options.GroupId, brokerId: 3);

        using IProducer<string, byte[]> producer = CreateProducer(broker.BootstrapServers);
        for (int index = 0; index < 20; index++)
        {
            string id = TestIds.Train(index);
            byte[] record = ExampleRecordCodec.Encode(id, 1, LearnerFixture.Training.Labels[index] % 2, LearnerFixture.Training.Image(index));
            await producer.ProduceAsync(new TopicPartition(topic, index % 2), new Message<string, byte[]> { Key = id, Value = record });
        }

        // A learner that consumed every record is assigned both partitions.
        using ContinualLearner learner = LearnerFixture.Create(options);
        learner.Start();
        (await LearnerFixture.WaitUntilAsync(() => learner.Status.Consumed == 20, TimeSpan.FromSeconds(30)))
            .ShouldBeTrue($"the learner consumed {learner.Status.Consumed} of 20 records");
        learner.IsReady.ShouldBeTrue();
        broker.SetBrokerDown(2);
        (await LearnerFixture.WaitUntilAsync(() => !learner.IsReady, TimeSpan.FromSeconds(15))).ShouldBeTrue("the learner stayed ready");
        learner.Status.IsBrokerAvailable.ShouldBeFalse();

        broker.SetBrokerUp(2);
        (await LearnerFixture.WaitUntilAsync(() => learner.IsReady, TimeSpan.FromSeconds(15))).ShouldBeTrue("the learner did not become ready again");
    }

    [Fact]
    public async Task RecordsDeletedWhileStoppedAreReportedLost()
    {
        const string topic = "retention-test";
        const int first = 200;
        using EmbeddedKafkaBroker broker = LearnerFixture.StartBroker(topic);
        string root = LearnerFixture.TemporaryRoot();
        LearnerOptions options = LearnerFixture.Options(broker.BootstrapServers, topic, root);
        using IProducer<string, byte[]> producer = CreateProducer(broker.BootstrapServers);
        await ProduceAsync(producer, topic, 0, first, paddingBytes: 0);
        using (ContinualLearner learner = LearnerFixture.Create(options))
        {
            learner.Start();
            (await LearnerFixture.WaitUntilAsync(() => LearnerFixture.CheckpointOffset(learner) == first, TimeSpan.FromSeconds(30))).ShouldBeTrue();
        }

        // About 8 MiB while the learner is stopped: the mock keeps about 5 MiB per partition and drops the oldest.
        await ProduceAsync(producer, topic, first, 80, paddingBytes: 100_000);
        long lowWatermark = LearnerFixture.Watermarks(broker.BootstrapServers, topic).Low.Value;
        lowWatermark.ShouldBeGreaterThan(first);

        using (ContinualLearner restarted = LearnerFixture.Create(options))
        {
            restarted.Start();
            (await LearnerFixture.WaitUntilAsync(() => restarted.Status.Lost > 0, TimeSpan.FromSeconds(30))).ShouldBeTrue("no lost records were reported");
            restarted.Status.Lost.ShouldBe(lowWatermark - first);
            (await LearnerFixture.WaitUntilAsync(() => LearnerFixture.CheckpointOffset(restarted) == first + 80, TimeSpan.FromSeconds(30)))
                .ShouldBeTrue($"the learner reached offset {LearnerFixture.CheckpointOffset(restarted)}");
        }
    }

    [Fact]
    public async Task RecordsDeletedWhilePausedAreReportedLost()
    {
        const string topic = "retention-paused-test";
        const int first = 200;
        using EmbeddedKafkaBroker broker = LearnerFixture.StartBroker(topic);
        LearnerOptions options = LearnerFixture.Options(broker.BootstrapServers, topic, LearnerFixture.TemporaryRoot());
        using IProducer<string, byte[]> producer = CreateProducer(broker.BootstrapServers);
        await ProduceAsync(producer, topic, 0, first, paddingBytes: 0);
        long lost;
        long lowWatermark;
        using (ContinualLearner learner = LearnerFixture.Create(options))
        {
            learner.Start();
            (await LearnerFixture.WaitUntilAsync(() => LearnerFixture.CheckpointOffset(learner) == first, TimeSpan.FromSeconds(30))).ShouldBeTrue();
            learner.PauseLearning();
            (await LearnerFixture.WaitUntilAsync(() => learner.Status.IsPaused, TimeSpan.FromSeconds(10))).ShouldBeTrue("the learner did not pause");

            // About 8 MiB while the paused learner keeps its assignment. The mock keeps about 5 MiB per partition, so the
            // fetch at the learner's position fails once it resumes, and the learner seeks to the oldest retained record.
            await ProduceAsync(producer, topic, first, 80, paddingBytes: 100_000);
            lowWatermark = LearnerFixture.Watermarks(broker.BootstrapServers, topic).Low.Value;
            lowWatermark.ShouldBeGreaterThan(first);
            learner.ResumeLearning();

            (await LearnerFixture.WaitUntilAsync(() => learner.Status.Lost > 0, TimeSpan.FromSeconds(30))).ShouldBeTrue("no lost records were reported");
            (await LearnerFixture.WaitUntilAsync(() => LearnerFixture.CheckpointOffset(learner) == first + 80, TimeSpan.FromSeconds(30)))
                .ShouldBeTrue($"the learner reached offset {LearnerFixture.CheckpointOffset(learner)}");
            learner.Status.IsRunning.ShouldBeTrue();
            lost = learner.Status.Lost;
        }

        // The pause reaches the consumer on its next poll, so a few of the new records may be read before it. The lost
        // range therefore ends at the low watermark and starts at or after the first new record.
        long firstLost = lowWatermark - lost;
        firstLost.ShouldBeGreaterThanOrEqualTo(first);
        IReadOnlyList<string> trained = LearnerFixture.TrainingLogIds(options);
        trained.GroupBy(id => id).Where(group => group.Count() > 1).Select(group => group.Key).ShouldBeEmpty();
        string[] expected = Enumerable.Range(0, first + 80)
            .Where(index => index < firstLost || index >= lowWatermark)
            .Select(TestIds.Train)
            .Where(id => !new HoldoutRouter(0.1).IsHoldout(id))
            .Order(StringComparer.Ordinal)
            .ToArray();
        trained.Order(StringComparer.Ordinal).ToArray().ShouldBe(expected);
    }

    [Fact]
    public async Task FreshLearnerReportsRecordsDeletedBefore()
    {
        const string topic = "retention-fresh-test";
        using EmbeddedKafkaBroker broker = LearnerFixture.StartBroker(topic);
        using IProducer<string, byte[]> producer = CreateProducer(broker.BootstrapServers);

        // About 8 MiB before any learner exists: the mock keeps about 5 MiB per partition and drops the oldest.
        await ProduceAsync(producer, topic, 0, 80, paddingBytes: 100_000);
        await ProduceAsync(producer, topic, 80, 20, paddingBytes: 0);
        long lowWatermark = LearnerFixture.Watermarks(broker.BootstrapServers, topic).Low.Value;
        lowWatermark.ShouldBeGreaterThan(0);

        using ContinualLearner learner = LearnerFixture.Create(LearnerFixture.Options(broker.BootstrapServers, topic, LearnerFixture.TemporaryRoot()));
        learner.Start();
        (await LearnerFixture.WaitUntilAsync(() => LearnerFixture.CheckpointOffset(learner) == 100, TimeSpan.FromSeconds(30)))
            .ShouldBeTrue($"the learner reached offset {LearnerFixture.CheckpointOffset(learner)}");
        learner.Status.DeletedBeforeStart.ShouldBe(lowWatermark);
        learner.Status.Lost.ShouldBe(0);
    }

    [Fact]
    public async Task RestartWithSmallerBufferKeepsLearning()
    {
        const string topic = "replay-shrink-test";
        using EmbeddedKafkaBroker broker = LearnerFixture.StartBroker(topic);
        LearnerOptions options = LearnerFixture.Options(broker.BootstrapServers, topic, LearnerFixture.TemporaryRoot());
        using IProducer<string, byte[]> producer = CreateProducer(broker.BootstrapServers);
        await ProduceAsync(producer, topic, 0, 200, paddingBytes: 0);
        using (ContinualLearner learner = LearnerFixture.Create(options))
        {
            learner.Start();
            (await LearnerFixture.WaitUntilAsync(() => LearnerFixture.CheckpointOffset(learner) == 200, TimeSpan.FromSeconds(30))).ShouldBeTrue();
            learner.Stop(TimeSpan.FromSeconds(10));
            learner.Status.Trained.ShouldBeGreaterThan(options.Trainer.ReplayCapacity);
        }

        // The checkpoint contains a full buffer of 100. The restarted learner keeps 40 of them, and a naive one keeps none.
        foreach ((ReplayStrategy strategy, int capacity, int expected) in new[] { (ReplayStrategy.DerPlusPlus, 40, 40), (ReplayStrategy.Naive, 100, 0) })
        {
            options.Trainer.Strategy = strategy;
            options.Trainer.ReplayCapacity = capacity;
            await ProduceAsync(producer, topic, 200, 20, paddingBytes: 0);
            long end = LearnerFixture.Watermarks(broker.BootstrapServers, topic).High.Value;
            using ContinualLearner restarted = LearnerFixture.Create(options);
            restarted.Start();
            (await LearnerFixture.WaitUntilAsync(() => LearnerFixture.CheckpointOffset(restarted) == end, TimeSpan.FromSeconds(30)))
                .ShouldBeTrue($"the restarted {strategy} learner reached offset {LearnerFixture.CheckpointOffset(restarted)}");
            restarted.Stop(TimeSpan.FromSeconds(10));
            restarted.Status.ReplayExamples.ShouldBe(expected);
        }
    }

    // Two brokers, with the topic's one partition led by broker 1, so that broker 2 can stay up as the group coordinator.
    private static EmbeddedKafkaBroker StartWithLeaderOnBrokerOne(string topic)
    {
        EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 2);
        broker.CreateTopic(topic, 1);
        broker.CreateTopic(topic + ".dlq", 1);
        broker.SetPartitionLeader(topic, 0, brokerId: 1);
        return broker;
    }

    private static IProducer<string, byte[]> CreateProducer(string bootstrapServers) =>
        new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = bootstrapServers, LingerMs = 5 }).Build();

    private static async Task ProduceAsync(IProducer<string, byte[]> producer, string topic, int start, int count, int paddingBytes)
    {
        for (int index = start; index < start + count; index++)
        {
            string id = TestIds.Train(index);
            byte[] record = ExampleRecordCodec.Encode(id, 1, LearnerFixture.Training.Labels[index] % 2, LearnerFixture.Training.Image(index));
            if (paddingBytes > 0)
            {
                string text = System.Text.Encoding.UTF8.GetString(record);
                record = System.Text.Encoding.UTF8.GetBytes(text[..^1] + ",\"padding\":\"" + new string('x', paddingBytes) + "\"}");
            }

            await producer.ProduceAsync(topic, new Message<string, byte[]> { Key = id, Value = record });
        }
    }
}
