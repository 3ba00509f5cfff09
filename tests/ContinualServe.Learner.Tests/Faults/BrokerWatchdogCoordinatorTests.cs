using Confluent.Kafka;
using ContinualServe.Learner.Faults;
using ContinualServe.Learner.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// The broker watchdog's query to the group's coordinator, against a coordinator that moves, flaps or is down at start,
/// on the embedded broker. Each case that takes the coordinator down ends with a bounded stop.
/// </summary>
public sealed class BrokerWatchdogCoordinatorTests
{
    private const string Topic = "watchdog-coordinator-topic";
    private const string Group = "watchdog-coordinator-group";
    private static readonly TopicPartition Partition = new(Topic, new Partition(0));

    [Fact(Timeout = 150_000)]
    public async Task CoordinatorMovesWhileOldBrokerDown()
    {
        // The leader is on broker 1 and the coordinator on broker 2. After broker 2 goes down, the group gets a new
        // coordinator on broker 3, as a real cluster elects one. The learner can then rejoin, so the watchdog must
        // report the broker available again while broker 2 stays down.
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 3);
        broker.CreateTopic(Topic, 1);
        broker.SetPartitionLeader(Topic, 0, brokerId: 1);
        broker.SetGroupCoordinator(Group, brokerId: 2);
        int changes = 0;
        var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => [Partition], () => Interlocked.Increment(ref changes), new RecordingLogger(), BrokerWatchdogTests.Fast);
        watchdog.Start();
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, 1);
        watchdog.IsAvailable.ShouldBeTrue();

        broker.SetBrokerDown(2);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 1, "the watchdog did not notice the coordinator's outage");

        broker.SetGroupCoordinator(Group, brokerId: 3);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 2, "the watchdog did not find the group's new coordinator");
        watchdog.IsAvailable.ShouldBeTrue();

        BrokerWatchdogLeaderTests.TimeDispose(watchdog).ShouldBeLessThan(BrokerWatchdogLeaderTests.StopLimit);
    }

    [Fact(Timeout = 150_000)]
    public async Task CoordinatorDownAtStartNoticed()
    {
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 2);
        broker.CreateTopic(Topic, 1);
        broker.SetPartitionLeader(Topic, 0, brokerId: 1);
        broker.SetGroupCoordinator(Group, brokerId: 2);
        broker.SetBrokerDown(2);
        int changes = 0;
        var slowChecks = BrokerWatchdogTests.Fast with { CheckInterval = TimeSpan.FromMinutes(1) };
        var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => [Partition], () => Interlocked.Increment(ref changes), new RecordingLogger(), slowChecks);

        watchdog.Start();
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 1, "a coordinator down at start was not noticed");
        watchdog.IsAvailable.ShouldBeFalse();

        broker.SetBrokerUp(2);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 2, "the coordinator's start was not noticed");

        BrokerWatchdogLeaderTests.TimeDispose(watchdog).ShouldBeLessThan(BrokerWatchdogLeaderTests.StopLimit);
    }

    [Fact(Timeout = 150_000)]
    public async Task ManyPartitionsCoordinatorDownNoticed()
    {
        // Fifty partitions on brokers 1 and 2 all respond, so only the query to the coordinator on broker 3 fails.
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 3);
        broker.CreateTopic(Topic, 50);
        TopicPartition[] watched = Enumerable.Range(0, 50).Select(index => new TopicPartition(Topic, new Partition(index))).ToArray();
        for (int index = 0; index < watched.Length; index++)
        {
            broker.SetPartitionLeader(Topic, index, brokerId: 1 + (index % 2));
        }

        broker.SetGroupCoordinator(Group, brokerId: 3);
        var logger = new RecordingLogger();
        int changes = 0;
        var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => watched, () => Interlocked.Increment(ref changes), logger, BrokerWatchdogTests.Fast);
        watchdog.Start();
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, 1);
        watchdog.IsAvailable.ShouldBeTrue();

        broker.SetBrokerDown(3);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 1, "the coordinator's outage was not noticed");
        logger.Messages.ShouldContain(message => message.Contains($"the coordinator of consumer group {Group}", StringComparison.Ordinal));

        BrokerWatchdogLeaderTests.TimeDispose(watchdog).ShouldBeLessThan(BrokerWatchdogLeaderTests.StopLimit);
    }

    [Fact(Timeout = 150_000)]
    public async Task CoordinatorFlappingEndsAvailable()
    {
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 2);
        broker.CreateTopic(Topic, 1);
        broker.SetPartitionLeader(Topic, 0, brokerId: 1);
        broker.SetGroupCoordinator(Group, brokerId: 2);
        var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => [Partition], () => { }, new RecordingLogger(), BrokerWatchdogTests.Fast);
        watchdog.Start();
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, 1);

        for (int flap = 0; flap < 20; flap++)
        {
            broker.SetBrokerDown(2);
            await Task.Delay(TimeSpan.FromMilliseconds(150));
            broker.SetBrokerUp(2);
            await Task.Delay(TimeSpan.FromMilliseconds(150));
        }

        await LearnerHarness.WaitUntilAsync(() => watchdog.IsAvailable, "the watchdog stayed unavailable after the coordinator came back");

        BrokerWatchdogLeaderTests.TimeDispose(watchdog).ShouldBeLessThan(BrokerWatchdogLeaderTests.StopLimit);
    }

    [Theory(Timeout = 150_000)]
    [InlineData(2)]
    [InlineData(1, 2)]
    public async Task DisposeWithBrokersDownDefaultTimings(params int[] downBrokers)
    {
        // The default timings, with the coordinator alone down or every broker down.
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 2);
        broker.CreateTopic(Topic, 1);
        broker.SetPartitionLeader(Topic, 0, brokerId: 1);
        broker.SetGroupCoordinator(Group, brokerId: 2);
        var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => [Partition], () => { }, new RecordingLogger());
        watchdog.Start();
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, 1);
        foreach (int down in downBrokers)
        {
            broker.SetBrokerDown(down);
        }

        await LearnerHarness.WaitUntilAsync(() => !watchdog.IsAvailable, "the watchdog did not notice the outage");

        BrokerWatchdogLeaderTests.TimeDispose(watchdog).ShouldBeLessThan(BrokerWatchdogLeaderTests.StopLimit);
    }

    [Fact(Timeout = 150_000)]
    public async Task CommittedGroupStaysAvailable()
    {
        // A group that has committed an offset returns it, which is not an error.
        using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
        using (IConsumer<Ignore, Ignore> committer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = Group }).Build())
        {
            committer.Commit([new TopicPartitionOffset(Partition, new Offset(0))]);
        }

        int changes = 0;
        using var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => [Partition], () => Interlocked.Increment(ref changes), new RecordingLogger(), BrokerWatchdogTests.Fast);
        watchdog.Start();
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, 2);
        watchdog.IsAvailable.ShouldBeTrue();
        Volatile.Read(ref changes).ShouldBe(0);
    }
}
