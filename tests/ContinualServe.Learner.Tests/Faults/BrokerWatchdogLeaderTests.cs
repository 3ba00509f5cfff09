using System.Diagnostics;
using Confluent.Kafka;
using ContinualServe.Learner.Faults;
using ContinualServe.Learner.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// The broker watchdog's check of one partition per leader broker, against leaders that move, topics that do not exist,
/// partitions without a leader and many partitions, on the embedded broker. Each case ends with a bounded stop.
/// </summary>
public sealed class BrokerWatchdogLeaderTests
{
    private const string Topic = "watchdog-leader-topic";
    private const string Group = "watchdog-leader-group";
    private const short MetadataApi = 3;

    // A stop waits for at most the query in progress and the metadata requests of one check, each bounded by 1 s here.
    internal static readonly TimeSpan StopLimit = TimeSpan.FromSeconds(10);

    [Fact(Timeout = 150_000)]
    public async Task LeaderMovesToDownBroker()
    {
        // Four partitions and the group's coordinator on broker 1. Broker 2 is down when partition 3's leader moves there.
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 2);
        broker.CreateTopic(Topic, 4);
        broker.SetGroupCoordinator(Group, brokerId: 1);
        TopicPartition[] watched = Partitions(Topic, 4);
        for (int index = 0; index < watched.Length; index++)
        {
            broker.SetPartitionLeader(Topic, index, brokerId: 1);
        }

        var logger = new RecordingLogger();
        int changes = 0;
        var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => watched, () => Interlocked.Increment(ref changes), logger, BrokerWatchdogTests.Fast);
        watchdog.Start();
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, 1);
        watchdog.IsAvailable.ShouldBeTrue();

        // Three more successful checks, so at least two of them start after the outage begins.
        int checksBeforeOutage = watchdog.SucceededChecks;
        broker.SetBrokerDown(2);
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, checksBeforeOutage + 3);
        Volatile.Read(ref changes).ShouldBe(0, "broker 2 leads no watched partition, so its outage must not matter");

        broker.SetPartitionLeader(Topic, 3, brokerId: 2);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 1, "a partition whose leader moved to a down broker was not noticed");
        watchdog.IsAvailable.ShouldBeFalse();
        logger.Messages.ShouldContain(message => message.Contains($"the leader of {watched[3]}", StringComparison.Ordinal));

        broker.SetBrokerUp(2);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 2, "the recovery of partition 3's new leader was not noticed");
        watchdog.IsAvailable.ShouldBeTrue();

        TimeDispose(watchdog).ShouldBeLessThan(StopLimit);
    }

    [Fact(Timeout = 150_000)]
    public async Task AllLeadersMoveThenOldLeaderDown()
    {
        // Every partition moves from broker 1 to broker 2 and then broker 1 goes down. Every leader and the group's
        // coordinator on broker 2 still respond.
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 2);
        broker.CreateTopic(Topic, 4);
        broker.SetGroupCoordinator(Group, brokerId: 2);
        TopicPartition[] watched = Partitions(Topic, 4);
        for (int index = 0; index < watched.Length; index++)
        {
            broker.SetPartitionLeader(Topic, index, brokerId: 1);
        }

        var logger = new RecordingLogger();
        int changes = 0;
        var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => watched, () => Interlocked.Increment(ref changes), logger, BrokerWatchdogTests.Fast);
        watchdog.Start();
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, 1);
        watchdog.IsAvailable.ShouldBeTrue();

        int checksBeforeMove = watchdog.SucceededChecks;
        for (int index = 0; index < watched.Length; index++)
        {
            broker.SetPartitionLeader(Topic, index, brokerId: 2);
        }

        broker.SetBrokerDown(1);
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, checksBeforeMove + 5);
        Volatile.Read(ref changes).ShouldBe(0, "every watched partition's leader responds, so readiness must not flip");
        watchdog.IsAvailable.ShouldBeTrue();

        TimeDispose(watchdog).ShouldBeLessThan(StopLimit);
    }

    [Fact(Timeout = 150_000)]
    public async Task MoveAwayFromDownLeaderRecovers()
    {
        // Broker 1 leads every partition and goes down. Moving the partitions to broker 2 makes every leader respond
        // again, while broker 1 stays down. The group's coordinator is on broker 2 throughout.
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 2);
        broker.CreateTopic(Topic, 4);
        broker.SetGroupCoordinator(Group, brokerId: 2);
        TopicPartition[] watched = Partitions(Topic, 4);
        for (int index = 0; index < watched.Length; index++)
        {
            broker.SetPartitionLeader(Topic, index, brokerId: 1);
        }

        int changes = 0;
        var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => watched, () => Interlocked.Increment(ref changes), new RecordingLogger(), BrokerWatchdogTests.Fast);
        watchdog.Start();
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, 1);

        broker.SetBrokerDown(1);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 1, "the outage of the only leader was not noticed");

        for (int index = 0; index < watched.Length; index++)
        {
            broker.SetPartitionLeader(Topic, index, brokerId: 2);
        }

        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 2, "moving every partition to a broker that is up did not mark the broker available");
        watchdog.IsAvailable.ShouldBeTrue();

        TimeDispose(watchdog).ShouldBeLessThan(StopLimit);
    }

    [Theory(Timeout = 150_000)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task MissingTopicAmongWatchedMarksUnavailable(bool missingFirst)
    {
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 2);
        broker.CreateTopic(Topic, 2);
        broker.SetPartitionLeader(Topic, 0, brokerId: 1);
        broker.SetPartitionLeader(Topic, 1, brokerId: 2);
        var missing = new TopicPartition("watchdog-missing-topic", new Partition(0));
        TopicPartition[] present = Partitions(Topic, 2);
        TopicPartition[] withMissing = missingFirst ? [missing, .. present] : [.. present, missing];
        TopicPartition[] watched = withMissing;
        var logger = new RecordingLogger();
        var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => Volatile.Read(ref watched), () => { }, logger, BrokerWatchdogTests.Fast);
        watchdog.Start();

        await LearnerHarness.WaitUntilAsync(() => !watchdog.IsAvailable, "a watched partition of a topic that does not exist was reported available");
        logger.Messages.ShouldContain(message => message.Contains($"the leader of {missing}", StringComparison.Ordinal));

        // The check must not create the missing topic, so it stays unavailable.
        await Task.Delay(TimeSpan.FromSeconds(2));
        watchdog.IsAvailable.ShouldBeFalse();

        Volatile.Write(ref watched, present);
        await LearnerHarness.WaitUntilAsync(() => watchdog.IsAvailable, "the existing topic's partitions alone were not reported available");

        // A stop while the missing topic is watched again and the watchdog is failing checks.
        Volatile.Write(ref watched, withMissing);
        await LearnerHarness.WaitUntilAsync(() => !watchdog.IsAvailable, "the missing topic was not noticed a second time");
        TimeDispose(watchdog).ShouldBeLessThan(StopLimit);
    }

    [Fact(Timeout = 150_000)]
    public async Task LeaderSetToNoBroker()
    {
        // The mock accepts -1 as "no leader". A partition without a leader cannot be read, so it counts as unreachable.
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 2);
        broker.CreateTopic(Topic, 3);
        TopicPartition[] watched = Partitions(Topic, 3);
        for (int index = 0; index < watched.Length; index++)
        {
            broker.SetPartitionLeader(Topic, index, brokerId: 1);
        }

        var logger = new RecordingLogger();
        int changes = 0;
        var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => watched, () => Interlocked.Increment(ref changes), logger, BrokerWatchdogTests.Fast);
        watchdog.Start();
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, 1);
        watchdog.IsAvailable.ShouldBeTrue();

        broker.SetPartitionLeader(Topic, 2, brokerId: -1);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 1, "a partition without a leader was reported available");
        logger.Messages.ShouldContain(message => message.Contains($"the leader of {watched[2]}", StringComparison.Ordinal));

        broker.SetPartitionLeader(Topic, 2, brokerId: 2);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 2, "a partition that got a leader again was not reported available");

        TimeDispose(watchdog).ShouldBeLessThan(StopLimit);
    }

    [Fact(Timeout = 150_000)]
    public async Task MetadataBrokerDownOtherLeadersUp()
    {
        // Three brokers. The test finds the broker that receives most of the watchdog's metadata requests, moves every leader
        // off it and takes it down. The leaders still respond, so the watchdog must stay available.
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 3);
        broker.CreateTopic(Topic, 4);
        TopicPartition[] watched = Partitions(Topic, 4);
        for (int index = 0; index < watched.Length; index++)
        {
            broker.SetPartitionLeader(Topic, index, brokerId: 1 + (index % 3));
        }

        broker.StartRequestTracking();
        var logger = new RecordingLogger();
        int changes = 0;
        var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => watched, () => Interlocked.Increment(ref changes), logger, BrokerWatchdogTests.Fast);
        watchdog.Start();
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, 5);
        watchdog.IsAvailable.ShouldBeTrue();

        IReadOnlyDictionary<int, int> metadataRequests = broker.CountRequests(MetadataApi);
        int metadataBroker = metadataRequests.MaxBy(pair => pair.Value).Key;
        int[] others = Enumerable.Range(1, 3).Where(id => id != metadataBroker).ToArray();
        for (int index = 0; index < watched.Length; index++)
        {
            broker.SetPartitionLeader(Topic, index, brokerId: others[index % 2]);
        }

        broker.SetGroupCoordinator(Group, brokerId: others[1]);

        // Two more successful checks, so at least one starts after the move, before the metadata broker goes down.
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, watchdog.SucceededChecks + 2);
        broker.StartRequestTracking();
        int checksBeforeOutage = watchdog.SucceededChecks;
        broker.SetBrokerDown(metadataBroker);
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, checksBeforeOutage + 5);
        Volatile.Read(ref changes).ShouldBe(0, "every watched leader responds, so readiness must not flip");

        // Taking a leader down as well must still be noticed without the first broker.
        broker.SetBrokerDown(others[0]);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 1, "a leader's outage was not noticed while the metadata broker was down");

        TimeDispose(watchdog).ShouldBeLessThan(StopLimit);
    }

    [Fact(Timeout = 150_000)]
    public async Task ManyPartitionsAllBrokersDownStopsQuickly()
    {
        // With every broker down the metadata requests fail, so a check falls back to querying every partition. It
        // stops at the first failed query, so neither the check nor a stop takes fifty timeouts.
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 3);
        broker.CreateTopic(Topic, 50);
        TopicPartition[] watched = Partitions(Topic, 50);
        int changes = 0;
        var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => watched, () => Interlocked.Increment(ref changes), new RecordingLogger(), BrokerWatchdogTests.Fast);
        watchdog.Start();
        await BrokerWatchdogTests.WaitForSucceededChecksAsync(watchdog, 1);
        watchdog.IsAvailable.ShouldBeTrue();

        for (int id = 1; id <= 3; id++)
        {
            broker.SetBrokerDown(id);
        }

        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 1, "the outage of every broker was not noticed");

        await Task.Delay(TimeSpan.FromMilliseconds(700));
        TimeDispose(watchdog).ShouldBeLessThan(StopLimit);
    }

    private static TopicPartition[] Partitions(string topic, int count) =>
        Enumerable.Range(0, count).Select(index => new TopicPartition(topic, new Partition(index))).ToArray();

    internal static TimeSpan TimeDispose(BrokerWatchdog watchdog)
    {
        var clock = Stopwatch.StartNew();
        watchdog.Dispose();
        return clock.Elapsed;
    }
}
