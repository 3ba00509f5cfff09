using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Kafka;

public sealed class ConsumerLagTests : IDisposable
{
    private const string Topic = "lag-examples";
    private const int FailedLagQueries = 3;
    private const int LagQueryFailedEvent = 234;

    // Three failed queries keep the learner unready for about 3 s when each is repeated after 1 s. Repeated after 5 s,
    // as a known lag is refreshed, they keep it unready for at least 15 s.
    private static readonly TimeSpan ReadyAfterFailedQueriesLimit = TimeSpan.FromSeconds(10);

    private readonly TemporaryDirectory storeDirectory = new("continualserve-learner-lag-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task LagGrowsWhileLearningIsPaused()
    {
        await Task.Run(async () =>
        {
            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic(Topic, partitionCount: 1);
            broker.CreateTopic(Topic + ".dlq", partitionCount: 1);
            using var learner = new ContinualLearner(Options(broker.BootstrapServers), NullLoggerFactory.Instance);
            learner.Start();
            Produce(broker.BootstrapServers, first: 0, count: 10);
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Consumed == 10);

            // The learner applies a pause before its next read, within about 100 ms, and records read before that still count as consumed.
            learner.PauseLearning();
            await Task.Delay(TimeSpan.FromSeconds(1));
            Produce(broker.BootstrapServers, first: 10, count: 40);
            await LearnerHarness.WaitUntilAsync(() => learner.Status.ConsumerLag > 0 && learner.Status.ConsumerLag + learner.Status.Consumed == 50);
            await Task.Delay(TimeSpan.FromSeconds(1));
            learner.Status.Consumed.ShouldBeLessThan(50, "a paused learner kept consuming");

            learner.ResumeLearning();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Consumed == 50 && learner.Status.ConsumerLag == 0);
            learner.Stop(TimeSpan.FromSeconds(10));
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task LagUnknownUntilAssigned()
    {
        await Task.Run(async () =>
        {
            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic(Topic, partitionCount: 1);
            broker.CreateTopic(Topic + ".dlq", partitionCount: 1);

            // The group assigns the partition 2 s after the learner joins, as after a restart while the previous
            // process's session has not expired yet. With a 4 s delay, longer than the learner's 3 s session, the learner did
            // not become ready within 60 s.
            broker.SetInitialRebalanceDelay(TimeSpan.FromSeconds(2));
            Produce(broker.BootstrapServers, first: 0, count: 30);
            using var learner = new ContinualLearner(Options(broker.BootstrapServers), NullLoggerFactory.Instance);
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsRunning);

            LearnerStatus joining = learner.Status;
            joining.AssignedPartitions.ShouldBeNull("the group assigned a partition before its rebalance delay ended");
            joining.ConsumerLag.ShouldBeNull("the lag of a learner without an assignment reads as known");
            learner.IsReady.ShouldBeFalse("a learner without an assignment reports ready");

            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready after the assignment");
            learner.Status.AssignedPartitions.ShouldBe(1);
            learner.Status.ConsumerLag.ShouldNotBeNull();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Consumed == 30 && learner.Status.ConsumerLag == 0);
            learner.Stop(TimeSpan.FromSeconds(10));
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task RevokedPartitionLeavesNoLagSeries()
    {
        await Task.Run(async () =>
        {
            // Partition 7 of an 8-partition topic, a label that the other learner tests in this process do not set.
            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic(Topic, partitionCount: 8);
            broker.CreateTopic(Topic + ".dlq", partitionCount: 1);
            using var learner = new ContinualLearner(Options(broker.BootstrapServers), NullLoggerFactory.Instance);
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady);
            HasLagSeries("7").ShouldBeTrue("the learner did not set the lag of an assigned partition");

            // The stop leaves the group, which revokes every partition, so the lag is no longer measured.
            learner.Stop(TimeSpan.FromSeconds(10)).ShouldBeTrue();
            learner.Status.ConsumerLag.ShouldBeNull();
            HasLagSeries("7").ShouldBeFalse("a revoked partition kept its last lag");
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task IdleMemberReadyWithZeroLag()
    {
        await Task.Run(async () =>
        {
            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic(Topic, partitionCount: 1);
            broker.CreateTopic(Topic + ".dlq", partitionCount: 1);
            using var otherStore = new TemporaryDirectory("continualserve-learner-lag-");
            using var first = new ContinualLearner(Options(broker.BootstrapServers), NullLoggerFactory.Instance);
            using var second = new ContinualLearner(Options(broker.BootstrapServers, otherStore.Path), NullLoggerFactory.Instance);
            first.Start();
            second.Start();

            // Two members share one partition, so the group assigns it to one of them and none to the other.
            await LearnerHarness.WaitUntilAsync(
                () => first.IsReady && second.IsReady && first.Status.AssignedPartitions + second.Status.AssignedPartitions == 1,
                "the two learners did not both become ready with the partition assigned to one of them");
            LearnerStatus idle = first.Status.AssignedPartitions == 0 ? first.Status : second.Status;
            idle.ConsumerLag.ShouldBe(0);
            first.Stop(TimeSpan.FromSeconds(10));
            second.Stop(TimeSpan.FromSeconds(10));
        });
    }

    // A learner is not ready until it has measured the lag of its assignment, so a failed watermark query (a slow
    // partition leader) is repeated after 1 s, not after the 5 s between refreshes of a known lag.
    [Fact(Timeout = 120_000)]
    public async Task FailedLagQueryRetriedSoon()
    {
        await Task.Run(async () =>
        {
            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic(Topic, partitionCount: 1);
            broker.CreateTopic(Topic + ".dlq", partitionCount: 1);
            var loggerFactory = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(Options(broker.BootstrapServers), loggerFactory);
            int queries = 0;
            long firstQueryAt = 0;
            learner.BeforeWatermarkQuery = _ =>
            {
                int query = Interlocked.Increment(ref queries);
                if (query == 1)
                {
                    Interlocked.Exchange(ref firstQueryAt, Stopwatch.GetTimestamp());
                }

                if (query <= FailedLagQueries)
                {
                    throw new KafkaException(ErrorCode.RequestTimedOut);
                }
            };
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref queries) > 0, "the learner queried no watermark after the assignment");

            while (!learner.IsReady)
            {
                Stopwatch.GetElapsedTime(Interlocked.Read(ref firstQueryAt)).ShouldBeLessThan(
                    ReadyAfterFailedQueriesLimit, $"the learner was not ready after {Volatile.Read(ref queries)} watermark queries");
                await Task.Delay(50);
            }

            int queriesUntilReady = Volatile.Read(ref queries);
            learner.Status.ConsumerLag.ShouldBe(0);
            learner.Stop(TimeSpan.FromSeconds(10));

            queriesUntilReady.ShouldBe(FailedLagQueries + 1, "watermark queries until the learner was ready");
            LogRecord[] warnings = [.. loggerFactory.Logger.Records.Where(record => record.EventId == LagQueryFailedEvent)];
            warnings.Length.ShouldBe(FailedLagQueries, "warnings of failed watermark queries");
            warnings[0].Exception.ShouldBeOfType<KafkaException>();
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task FailedQueryKeepsMeasuredPartitions()
    {
        await Task.Run(async () =>
        {
            // Partition 6's query always fails. The partitions queried before it in the same measurement keep their lag.
            // The gauge is process-wide, so the checks use partitions 3 to 5, which no other test's learner is assigned.
            const int FailingPartition = 6;
            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic(Topic, partitionCount: FailingPartition + 1);
            broker.CreateTopic(Topic + ".dlq", partitionCount: 1);
            using var learner = new ContinualLearner(Options(broker.BootstrapServers), NullLoggerFactory.Instance);
            var queriedBeforeFailure = new List<int>();
            int failedQueries = 0;
            learner.BeforeWatermarkQuery = partition =>
            {
                if (partition.Partition.Value == FailingPartition)
                {
                    Interlocked.Increment(ref failedQueries);
                    throw new KafkaException(ErrorCode.RequestTimedOut);
                }

                lock (queriedBeforeFailure)
                {
                    if (Volatile.Read(ref failedQueries) == 0)
                    {
                        queriedBeforeFailure.Add(partition.Partition.Value);
                    }
                }
            };
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref failedQueries) >= 2, "the learner did not query partition 6 twice");

            int[] checkedPartitions;
            lock (queriedBeforeFailure)
            {
                checkedPartitions = [.. queriedBeforeFailure.Where(partition => partition >= 3)];
            }

            checkedPartitions.ShouldNotBeEmpty("no partition from 3 to 5 was queried before partition 6");
            foreach (int partition in checkedPartitions)
            {
                HasLagSeries(partition.ToString(CultureInfo.InvariantCulture)).ShouldBeTrue($"partition {partition} lost its measured lag when partition 6's query failed");
            }

            HasLagSeries("6").ShouldBeFalse("partition 6 was never measured");
            learner.Status.ConsumerLag.ShouldBeNull();
            learner.IsReady.ShouldBeFalse();
            learner.Stop(TimeSpan.FromSeconds(10));
        });
    }

    private LearnerOptions Options(string bootstrapServers, string? store = null) =>
        LearnerHarness.Options(bootstrapServers, Topic, "lag-test", store ?? storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);

    private static bool HasLagSeries(string partition) =>
        ContinualServeMetrics.KafkaConsumerLag.GetAllLabelValues().Any(labels => labels.SequenceEqual([partition]));

    private static void Produce(string bootstrapServers, int first, int count)
    {
        using IProducer<byte[], byte[]> producer = new ProducerBuilder<byte[], byte[]>(KafkaDefaults.CreateProducerConfig(bootstrapServers)).Build();
        for (int index = first; index < first + count; index++)
        {
            string id = TestData.ExampleId("lag", index);
            byte[] value = ExampleRecordCodec.Encode(id, task: 1, TestData.TrainingSet.Labels[index], TestData.TrainingSet.Image(index));
            producer.Produce(Topic, new Message<byte[], byte[]> { Key = System.Text.Encoding.UTF8.GetBytes(id), Value = value });
        }

        producer.Flush(TimeSpan.FromSeconds(20));
    }
}
