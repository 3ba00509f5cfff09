using System.Diagnostics;
using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Kafka;

public sealed class EmbeddedKafkaBrokerTests
{
    // Upper bound for each wait loop below. xunit 2 enforces Fact.Timeout only for async tests,
    // so every test is async and every loop also checks its own deadline.
    private const int TestTimeoutMilliseconds = 30_000;
    private static readonly TimeSpan LoopTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan PollTimeout = TimeSpan.FromMilliseconds(50);

    [Fact(Timeout = TestTimeoutMilliseconds)]
    public async Task StartBindsLoopbackOnly()
    {
        await Task.Run(() =>
        {
            using var broker = EmbeddedKafkaBroker.Start(brokerCount: 3);

            broker.BootstrapServers.ShouldStartWith("127.0.0.1:");
            string[] servers = broker.BootstrapServers.Split(',');
            servers.Length.ShouldBe(3);
            foreach (string server in servers)
            {
                server.ShouldStartWith("127.0.0.1:");
            }
        });
    }

    [Fact(Timeout = TestTimeoutMilliseconds)]
    public async Task CreatedTopicVisibleInAdminMetadata()
    {
        await Task.Run(async () =>
        {
            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic("metadata-topic", partitionCount: 3);

            using var producer = new ProducerBuilder<string, string>(KafkaDefaults.CreateProducerConfig(broker.BootstrapServers)).Build();
            DeliveryResult<string, string> delivery = await producer
                .ProduceAsync("metadata-topic", new Message<string, string> { Key = "id-0", Value = "payload" })
                .WaitAsync(LoopTimeout);
            delivery.Status.ShouldBe(PersistenceStatus.Persisted);

            using var admin = new DependentAdminClientBuilder(producer.Handle).Build();
            Metadata metadata = admin.GetMetadata("metadata-topic", TimeSpan.FromSeconds(10));

            metadata.Topics.Count.ShouldBe(1);
            metadata.Topics[0].Topic.ShouldBe("metadata-topic");
            metadata.Topics[0].Error.Code.ShouldBe(ErrorCode.NoError);
            metadata.Topics[0].Partitions.Count.ShouldBe(3);
        });
    }

    [Fact(Timeout = TestTimeoutMilliseconds)]
    public async Task CreateExistingTopicThrows()
    {
        await Task.Run(() =>
        {
            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic("duplicate-topic", partitionCount: 1);

            var exception = Should.Throw<InvalidOperationException>(() => broker.CreateTopic("duplicate-topic", partitionCount: 1));
            exception.Message.ShouldContain("duplicate-topic");
        });
    }

    [Fact(Timeout = TestTimeoutMilliseconds)]
    public async Task DisposeTwiceThenCreateTopicThrows()
    {
        await Task.Run(() =>
        {
            var broker = EmbeddedKafkaBroker.Start();
            broker.Dispose();
            broker.Dispose();

            Should.Throw<ObjectDisposedException>(() => broker.CreateTopic("late-topic", partitionCount: 1));
        });
    }

    [Fact(Timeout = TestTimeoutMilliseconds)]
    public async Task CommittedGroupResumesWithoutGapsOrDuplicates()
    {
        await Task.Run(() =>
        {
            const string Topic = "resume-topic";
            const string GroupId = "resume-group";
            const int RecordCount = 1_000;
            const int FirstConsumerRecordCount = 400;

            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic(Topic, partitionCount: 3);
            ProduceKeys(broker.BootstrapServers, Topic, RecordCount);

            var deliveredKeys = new List<string>();
            ConsumerConfig config = KafkaDefaults.CreateConsumerConfig(broker.BootstrapServers, GroupId);

            using (var first = new ConsumerBuilder<string, string>(config).Build())
            {
                first.Subscribe(Topic);
                ConsumeAndStore(first, deliveredKeys, FirstConsumerRecordCount);
                first.Commit();
                first.Close();
            }

            deliveredKeys.Count.ShouldBe(FirstConsumerRecordCount);

            using (var second = new ConsumerBuilder<string, string>(config).Build())
            {
                second.Subscribe(Topic);
                ConsumeAndStore(second, deliveredKeys, RecordCount);

                // Poll a little longer so that a redelivered record would show up in the count.
                ConsumeAndStore(second, deliveredKeys, int.MaxValue, TimeSpan.FromMilliseconds(500));
                second.Commit();
                second.Close();
            }

            deliveredKeys.Count.ShouldBe(RecordCount);
            deliveredKeys.Distinct().Count().ShouldBe(RecordCount);
            deliveredKeys.ToHashSet().SetEquals(ExpectedKeys(RecordCount)).ShouldBeTrue();
        });
    }

    [Fact(Timeout = TestTimeoutMilliseconds)]
    public async Task TwoConsumerGroupSplitsPartitions()
    {
        await Task.Run(() =>
        {
            const string Topic = "split-topic";
            const string GroupId = "split-group";
            const int RecordCount = 200;

            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic(Topic, partitionCount: 2);
            ConsumerConfig config = KafkaDefaults.CreateConsumerConfig(broker.BootstrapServers, GroupId);

            using var first = new ConsumerBuilder<string, string>(config).Build();
            using var second = new ConsumerBuilder<string, string>(config).Build();
            first.Subscribe(Topic);
            second.Subscribe(Topic);

            // Records are produced only after the rebalance settles, so no partition moves
            // to the other consumer while it has uncommitted records.
            var stopwatch = Stopwatch.StartNew();
            while (first.Assignment.Count != 1 || second.Assignment.Count != 1)
            {
                stopwatch.Elapsed.ShouldBeLessThan(LoopTimeout, "the group did not give each consumer one partition in time");
                first.Consume(PollTimeout).ShouldBeNull();
                second.Consume(PollTimeout).ShouldBeNull();
            }

            first.Assignment.Single().Partition.ShouldNotBe(second.Assignment.Single().Partition);

            ProduceKeys(broker.BootstrapServers, Topic, RecordCount);

            var firstKeys = new List<string>();
            var secondKeys = new List<string>();
            stopwatch.Restart();
            while (firstKeys.Count + secondKeys.Count < RecordCount)
            {
                stopwatch.Elapsed.ShouldBeLessThan(LoopTimeout, $"only {firstKeys.Count + secondKeys.Count} of {RecordCount} records arrived in time");
                ConsumeOne(first, firstKeys);
                ConsumeOne(second, secondKeys);
            }

            firstKeys.ShouldNotBeEmpty();
            secondKeys.ShouldNotBeEmpty();
            firstKeys.Intersect(secondKeys).ShouldBeEmpty();
            var allKeys = firstKeys.Concat(secondKeys).ToList();
            allKeys.Count.ShouldBe(RecordCount);
            allKeys.ToHashSet().SetEquals(ExpectedKeys(RecordCount)).ShouldBeTrue();

            first.Close();
            second.Close();
        });
    }

    private static IEnumerable<string> ExpectedKeys(int count)
    {
        return Enumerable.Range(0, count).Select(index => $"id-{index}");
    }

    private static void ProduceKeys(string bootstrapServers, string topic, int count)
    {
        using var producer = new ProducerBuilder<string, string>(KafkaDefaults.CreateProducerConfig(bootstrapServers)).Build();
        var failures = new List<string>();
        foreach (string key in ExpectedKeys(count))
        {
            producer.Produce(topic, new Message<string, string> { Key = key, Value = $"value-{key}" }, report =>
            {
                if (report.Error.IsError)
                {
                    lock (failures)
                    {
                        failures.Add($"{report.Message.Key}: {report.Error.Reason}");
                    }
                }
            });
        }

        producer.Flush(LoopTimeout).ShouldBe(0, "records were still queued when the flush timed out");
        failures.ShouldBeEmpty();
    }

    // Consumes until `keys` contains `targetCount` entries, storing each offset after its key is added.
    // Without `timeout` the loop fails the test after LoopTimeout, and with it the loop returns quietly.
    private static void ConsumeAndStore(IConsumer<string, string> consumer, List<string> keys, int targetCount, TimeSpan? timeout = null)
    {
        var stopwatch = Stopwatch.StartNew();
        while (keys.Count < targetCount)
        {
            if (stopwatch.Elapsed >= (timeout ?? LoopTimeout))
            {
                timeout.ShouldNotBeNull($"only {keys.Count} of {targetCount} records arrived within {LoopTimeout}");
                return;
            }

            ConsumeOne(consumer, keys);
        }
    }

    private static void ConsumeOne(IConsumer<string, string> consumer, List<string> keys)
    {
        ConsumeResult<string, string>? result = consumer.Consume(PollTimeout);
        if (result is null || result.IsPartitionEOF)
        {
            return;
        }

        keys.Add(result.Message.Key);
        consumer.StoreOffset(result);
    }
}
