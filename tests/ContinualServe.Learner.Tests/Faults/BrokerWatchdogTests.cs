using Confluent.Kafka;
using ContinualServe.Learner.Faults;
using ContinualServe.Learner.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>The broker watchdog against the embedded broker taken down and brought back, with short intervals.</summary>
public sealed class BrokerWatchdogTests
{
    private const string Topic = "watchdog-topic";
    private const string Group = "watchdog-group";
    private static readonly TopicPartition Partition = new(Topic, new Partition(0));

    // A check every 300 ms and a probe every 100 ms. Two failed checks take at most about 4.5 s, because each failed
    // query also waits up to its timeout for a metadata request (about 5 s with several partitions, whose check first
    // requests the topic's metadata). The 1 s timeout of a check keeps a busy 2-core machine from failing two checks in
    // a row against a broker that is up.
    internal static readonly BrokerWatchdogTimings Fast = new(
        CheckInterval: TimeSpan.FromMilliseconds(300),
        CheckTimeout: TimeSpan.FromSeconds(1),
        ProbeInterval: TimeSpan.FromMilliseconds(100),
        ProbeTimeout: TimeSpan.FromMilliseconds(500));

    [Fact(Timeout = 150_000)]
    public async Task OutageAndRecoveryFlipAvailabilityOnceEach()
    {
        using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
        var logger = new RecordingLogger();
        int changes = 0;
        using var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => [Partition], () => Interlocked.Increment(ref changes), logger, Fast);
        watchdog.Start();

        // Several checks against a broker that responds change nothing.
        await WaitForSucceededChecksAsync(watchdog, 3);
        watchdog.IsAvailable.ShouldBeTrue();
        Volatile.Read(ref changes).ShouldBe(0);

        // The watchdog logs before it calls back, so the test waits for the call.
        broker.SetBrokerDown();
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 1, "the watchdog did not notice the outage");
        watchdog.IsAvailable.ShouldBeFalse();
        logger.Messages.ShouldContain(message => message.Contains("2 broker checks in a row failed", StringComparison.Ordinal));

        // Failed probes during the outage leave it unavailable without further calls.
        await Task.Delay(TimeSpan.FromSeconds(1));
        watchdog.IsAvailable.ShouldBeFalse();
        Volatile.Read(ref changes).ShouldBe(1);

        broker.SetBrokerUp();
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 2, "the watchdog did not notice the recovery");
        watchdog.IsAvailable.ShouldBeTrue();
        logger.Messages.ShouldContain(message => message.Contains("respond again", StringComparison.Ordinal));
    }

    [Fact(Timeout = 150_000)]
    public async Task LeaderDownWhileCoordinatorUp()
    {
        // librdkafka reports all brokers down only when none responds, so here only the watchdog's queries notice.
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 2);
        broker.CreateTopic(Topic, 1);
        broker.SetPartitionLeader(Topic, 0, brokerId: 1);
        broker.SetGroupCoordinator(Group, brokerId: 2);
        int changes = 0;
        using var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => [Partition], () => Interlocked.Increment(ref changes), new RecordingLogger(), Fast);
        watchdog.Start();
        await WaitForSucceededChecksAsync(watchdog, 1);
        watchdog.IsAvailable.ShouldBeTrue();

        broker.SetBrokerDown(1);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 1, "the watchdog did not notice the leader's outage");
        broker.SetBrokerUp(1);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 2, "the watchdog did not notice the leader's recovery");
    }

    [Fact(Timeout = 150_000)]
    public async Task CoordinatorDownWhileLeaderUp()
    {
        // Without its coordinator the learner's group session expires and the learner loses its partitions, although
        // the leader still responds.
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 2);
        broker.CreateTopic(Topic, 1);
        broker.SetPartitionLeader(Topic, 0, brokerId: 1);
        broker.SetGroupCoordinator(Group, brokerId: 2);
        var logger = new RecordingLogger();
        int changes = 0;
        using var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => [Partition], () => Interlocked.Increment(ref changes), logger, Fast);
        watchdog.Start();
        await WaitForSucceededChecksAsync(watchdog, 1);
        watchdog.IsAvailable.ShouldBeTrue();

        broker.SetBrokerDown(2);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 1, "the watchdog did not notice the coordinator's outage");
        watchdog.IsAvailable.ShouldBeFalse();
        logger.Messages.ShouldContain(message => message.Contains($"the coordinator of consumer group {Group}", StringComparison.Ordinal));

        broker.SetBrokerUp(2);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 2, "the watchdog did not notice the coordinator's recovery");
        watchdog.IsAvailable.ShouldBeTrue();
    }

    [Fact(Timeout = 150_000)]
    public async Task AnyWatchedLeaderDownMarksUnavailable()
    {
        // Partition 0's leader stays up, so only the query to partition 1's leader fails.
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 2);
        broker.CreateTopic(Topic, 2);
        broker.SetPartitionLeader(Topic, 0, brokerId: 1);
        broker.SetPartitionLeader(Topic, 1, brokerId: 2);
        TopicPartition[] watched = [Partition, new TopicPartition(Topic, new Partition(1))];
        var logger = new RecordingLogger();
        int changes = 0;
        using var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => watched, () => Interlocked.Increment(ref changes), logger, Fast);
        watchdog.Start();
        await WaitForSucceededChecksAsync(watchdog, 1);
        watchdog.IsAvailable.ShouldBeTrue();

        broker.SetBrokerDown(2);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 1, "the watchdog did not notice the outage of partition 1's leader");
        watchdog.IsAvailable.ShouldBeFalse();
        logger.Messages.ShouldContain(message => message.Contains($"the leader of {watched[1]}", StringComparison.Ordinal));

        broker.SetBrokerUp(2);
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 2, "the watchdog did not notice the recovery of partition 1's leader");
        watchdog.IsAvailable.ShouldBeTrue();
    }

    [Fact(Timeout = 150_000)]
    public async Task ChecksEachLeaderOnce()
    {
        // Six partitions on two leaders. The check interval is a minute, so only the check at start runs.
        const short ListOffsets = 2;
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(brokerCount: 2);
        broker.CreateTopic(Topic, 6);
        TopicPartition[] watched = Enumerable.Range(0, 6).Select(index => new TopicPartition(Topic, new Partition(index))).ToArray();
        for (int index = 0; index < watched.Length; index++)
        {
            broker.SetPartitionLeader(Topic, index, brokerId: index < 3 ? 1 : 2);
        }

        broker.StartRequestTracking();
        var slowChecks = Fast with { CheckInterval = TimeSpan.FromMinutes(1) };
        using (var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => watched, () => { }, new RecordingLogger(), slowChecks))
        {
            watchdog.Start();
            await LearnerHarness.WaitUntilAsync(() => broker.CountRequests(ListOffsets).Count == 2, "the watchdog did not query both leaders");
            await Task.Delay(TimeSpan.FromSeconds(1));
            watchdog.IsAvailable.ShouldBeTrue();
        }

        IReadOnlyDictionary<int, int> checkQueries = broker.CountRequests(ListOffsets);

        // One watermark query of one partition, for the number of requests it sends (two in librdkafka 2.16).
        broker.StartRequestTracking();
        using (IConsumer<Ignore, Ignore> consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = Group }).Build())
        {
            _ = consumer.QueryWatermarkOffsets(watched[0], TimeSpan.FromSeconds(10));
        }

        int requestsPerQuery = broker.CountRequests(ListOffsets).Values.Sum();
        requestsPerQuery.ShouldBeGreaterThan(0);
        checkQueries.ShouldBe(new Dictionary<int, int> { [1] = requestsPerQuery, [2] = requestsPerQuery });
    }

    [Fact(Timeout = 150_000)]
    public async Task MarkedUnavailableUntilProbeSucceeds()
    {
        using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
        int changes = 0;
        var slowChecks = Fast with { CheckInterval = TimeSpan.FromMinutes(1) };
        using var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => [Partition], () => Interlocked.Increment(ref changes), new RecordingLogger(), slowChecks);
        watchdog.Start();

        // The broker stays up, so the first probe after the mark succeeds. A check a minute away does not delay it.
        watchdog.MarkUnavailable();
        watchdog.IsAvailable.ShouldBeFalse();
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 2, "a probe did not mark the broker available again");
        watchdog.IsAvailable.ShouldBeTrue();
    }

    [Fact(Timeout = 150_000)]
    public async Task ReadsWatchedPartitionBeforeEachQuery()
    {
        using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
        TopicPartition watched = Partition;
        using var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => [Volatile.Read(ref watched)], () => { }, new RecordingLogger(), Fast);
        watchdog.Start();
        await WaitForSucceededChecksAsync(watchdog, 1);
        watchdog.IsAvailable.ShouldBeTrue();

        // A topic the broker does not have cannot be read, so it counts as unreachable.
        Volatile.Write(ref watched, new TopicPartition("missing-topic", new Partition(0)));
        await LearnerHarness.WaitUntilAsync(() => !watchdog.IsAvailable, "a partition nobody leads was reported available");

        Volatile.Write(ref watched, Partition);
        await LearnerHarness.WaitUntilAsync(() => watchdog.IsAvailable);
    }

    [Fact(Timeout = 150_000)]
    public async Task DisposeDuringOutageIsQuick()
    {
        using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
        var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => [Partition], () => { }, new RecordingLogger(), Fast);
        watchdog.Start();
        broker.SetBrokerDown();
        await LearnerHarness.WaitUntilAsync(() => !watchdog.IsAvailable, "the watchdog did not notice the outage");

        // Dispose waits for the query in progress and its metadata request, each bounded by a 1 s timeout here.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        watchdog.Dispose();
        clock.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(10));
    }

    [Fact(Timeout = 150_000)]
    public async Task BrokerDownAtStartNoticedAtOnce()
    {
        using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
        broker.SetBrokerDown();
        int changes = 0;
        var slowChecks = Fast with { CheckInterval = TimeSpan.FromMinutes(1) };
        using var watchdog = new BrokerWatchdog(broker.BootstrapServers, Group, () => [Partition], () => Interlocked.Increment(ref changes), new RecordingLogger(), slowChecks);

        // The first check runs at start and the second one a probe interval later, not a minute later.
        watchdog.Start();
        await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref changes) == 1, "a broker down at start was not noticed");
        watchdog.IsAvailable.ShouldBeFalse();
    }

    [Theory]
    [InlineData(0, 1, 1, 1)]
    [InlineData(1, -1, 1, 1)]
    [InlineData(1, 1, 0, 1)]
    [InlineData(1, 1, 1, -5)]
    public void TimingsNotPositiveAreRejected(int checkInterval, int checkTimeout, int probeInterval, int probeTimeout)
    {
        var timings = new BrokerWatchdogTimings(
            TimeSpan.FromSeconds(checkInterval), TimeSpan.FromSeconds(checkTimeout), TimeSpan.FromSeconds(probeInterval), TimeSpan.FromSeconds(probeTimeout));
        Should.Throw<ArgumentOutOfRangeException>(() => new BrokerWatchdog("127.0.0.1:1", Group, () => [Partition], () => { }, new RecordingLogger(), timings));
    }

    [Fact]
    public void CallsAfterDisposeDoNotThrow()
    {
        var watchdog = new BrokerWatchdog("127.0.0.1:1", Group, () => [Partition], () => { }, new RecordingLogger(), Fast);
        watchdog.Dispose();
        watchdog.Dispose();
        watchdog.IsAvailable.ShouldBeTrue();

        // A late all-brokers-down report after the stop changes the state but wakes nothing.
        watchdog.MarkUnavailable();
        watchdog.IsAvailable.ShouldBeFalse();
    }

    /// <summary>
    /// Waits until <paramref name="count"/> checks of <paramref name="watchdog"/> have succeeded, and fails the test
    /// after <see cref="LearnerHarness.WaitLimit"/>.
    /// </summary>
    internal static Task WaitForSucceededChecksAsync(BrokerWatchdog watchdog, int count) =>
        LearnerHarness.WaitUntilAsync(
            () => watchdog.SucceededChecks >= count,
            $"the number of successful checks against brokers that respond did not reach {count}");
}
