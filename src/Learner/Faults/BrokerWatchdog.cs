using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner.Faults;

/// <summary>
/// Decides whether the learner reaches the leaders of its partitions and its group's coordinator, from a thread and a
/// Kafka client of its own.
/// The learner's consumer delivers librdkafka's errors only inside <c>Consume</c>, and its thread can spend seconds in
/// a round, a commit or a leave while the broker is down, so readiness cannot wait for that thread.
/// </summary>
/// <remarks>
/// While the brokers respond, the watchdog checks them every <see cref="BrokerWatchdogTimings.CheckInterval"/>: it requests
/// from each leader broker the watermarks of one of the watched partitions it leads, and then requests the committed offset
/// of one watched partition from the group's coordinator. A check fails at the first query that fails. Two failed checks in a
/// row, <see cref="BrokerWatchdogTimings.ProbeInterval"/> apart, mark the broker unavailable, so one slow response does
/// not flip readiness. While it is unavailable the watchdog checks every probe interval, and the first check in which
/// every leader and the coordinator respond marks it available again.
/// With several watched partitions, a check first requests the topic's metadata to learn their leaders. It then sends
/// one query per leader broker, not one per partition, so a learner assigned hundreds of partitions on a few brokers sends
/// a few requests per check. Without that metadata (a timeout, an error) it queries every partition.
/// The coordinator matters as much as the leaders: without it the learner's group session expires, the learner loses
/// its partitions and stops reading, although every leader still responds.
/// </remarks>
public sealed partial class BrokerWatchdog : IDisposable
{
    private const int FailedChecksBeforeUnavailable = 2;

    private readonly string groupId;
    private readonly Func<IReadOnlyList<TopicPartition>> partitions;
    private readonly Action availabilityChanged;
    private readonly ILogger logger;
    private readonly BrokerWatchdogTimings timings;
    private readonly IConsumer<Ignore, Ignore> client;
    private readonly IAdminClient metadata;
    private readonly CancellationTokenSource stopping = new();
    private readonly SemaphoreSlim wakeUp = new(0, 1);
    private readonly Lock availabilityLock = new();
    private readonly Thread thread;
    private volatile bool available = true;
    private int succeededChecks;
    private bool disposed;

    /// <param name="bootstrapServers">The brokers of the learner's topic.</param>
    /// <param name="groupId">
    /// The learner's consumer group, which the watchdog's client names but never joins. Its coordinator is checked.
    /// </param>
    /// <param name="partitions">
    /// The partitions whose leaders to query, read before each check. A check of no partitions changes nothing.
    /// </param>
    /// <param name="availabilityChanged">
    /// Called after <see cref="IsAvailable"/> changes, on the watchdog's thread or on the thread of <see cref="MarkUnavailable"/>.
    /// </param>
    /// <param name="logger">Receives the changes and the client's librdkafka log.</param>
    /// <param name="timings">The query intervals and timeouts, or null for <see cref="BrokerWatchdogTimings.Default"/>.</param>
    /// <param name="kafkaProperties">Extra librdkafka properties of the learner's clients (security), or null for none.</param>
    /// <param name="sessionTimeout">
    /// The learner consumer's session timeout, or null for librdkafka's default. The watchdog's client takes it too, because
    /// librdkafka rejects a max.poll.interval.ms in <paramref name="kafkaProperties"/> that is shorter than the session timeout.
    /// </param>
    public BrokerWatchdog(
        string bootstrapServers,
        string groupId,
        Func<IReadOnlyList<TopicPartition>> partitions,
        Action availabilityChanged,
        ILogger logger,
        BrokerWatchdogTimings? timings = null,
        KafkaClientProperties? kafkaProperties = null,
        TimeSpan? sessionTimeout = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(bootstrapServers);
        ArgumentException.ThrowIfNullOrWhiteSpace(groupId);
        this.groupId = groupId;
        this.partitions = partitions;
        this.availabilityChanged = availabilityChanged;
        this.logger = logger;
        this.timings = timings ?? BrokerWatchdogTimings.Default;
        this.timings.Validate();

        // The client never subscribes, so it joins no group, and it takes the learner's group id because the learner's
        // credentials may already use it. Its errors are dropped because the learner's consumer logs the same ones.
        // The admin client's ListOffsets is not used: librdkafka's mock cluster returned neither an offset nor an error.
        ConsumerConfig config = (kafkaProperties ?? KafkaClientProperties.None).ApplyTo(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = groupId,
            EnableAutoCommit = false,
            ReconnectBackoffMs = 100,
            ReconnectBackoffMaxMs = 2000,
            SessionTimeoutMs = sessionTimeout is { } session ? (int)session.TotalMilliseconds : null,
        });
        client = new ConsumerBuilder<Ignore, Ignore>(config)
            .SetLogHandler(new KafkaClientLog(logger).OnLog)
            .SetErrorHandler((_, _) => { })
            .Build();
        metadata = new DependentAdminClientBuilder(client.Handle).Build();
        thread = new Thread(Run) { IsBackground = true, Name = "continualserve-broker-watchdog" };
    }

    /// <summary>False from two failed checks in a row, or from <see cref="MarkUnavailable"/>, until a check succeeds.</summary>
    public bool IsAvailable => available;

    /// <summary>
    /// The number of checks so far in which every leader and the coordinator responded. Tests wait for it, because
    /// <see cref="IsAvailable"/> starts true and stays true after one failed check, so it cannot show that a check ran.
    /// </summary>
    internal int SucceededChecks => Volatile.Read(ref succeededChecks);

    /// <summary>Starts the thread, which checks the leaders at once and then every check interval.</summary>
    public void Start()
    {
        Wake();
        thread.Start();
    }

    /// <summary>
    /// Marks the broker unavailable at once, for librdkafka's report that all brokers are down, and checks the
    /// leaders every probe interval from then on.
    /// </summary>
    public void MarkUnavailable()
    {
        if (SetAvailable(false, log: null))
        {
            Wake();
        }
    }

    /// <summary>Checks the leaders now instead of at the end of the current interval, for example after a new assignment.</summary>
    public void Wake()
    {
        try
        {
            wakeUp.Release();
        }
        catch (SemaphoreFullException)
        {
            // A wake-up is already pending.
        }
        catch (ObjectDisposedException)
        {
            // A late librdkafka callback after the stop: nothing is left to check.
        }
    }

    /// <summary>Stops the thread, waiting at most for the query in progress, and closes the client.</summary>
    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        stopping.Cancel();
        if (thread.IsAlive)
        {
            thread.Join();
        }

        metadata.Dispose();
        client.Dispose();
        stopping.Dispose();
        wakeUp.Dispose();
    }

    private void Run()
    {
        int failedChecks = 0;
        while (!stopping.IsCancellationRequested)
        {
            TimeSpan interval = !available || failedChecks > 0 ? timings.ProbeInterval : timings.CheckInterval;
            try
            {
                wakeUp.Wait(interval, stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            ServeEvents();
            IReadOnlyList<TopicPartition> watched = partitions();
            if (watched.Count == 0)
            {
                continue;
            }

            CheckFailure? failure = Check(watched, available ? timings.CheckTimeout : timings.ProbeTimeout);
            if (stopping.IsCancellationRequested)
            {
                return;
            }

            if (failure is null)
            {
                failedChecks = 0;
                SetAvailable(true, () => LogLeadersRespond(logger, watched, groupId));
                Interlocked.Increment(ref succeededChecks);
            }
            else if (available && ++failedChecks >= FailedChecksBeforeUnavailable)
            {
                failedChecks = 0;
                SetAvailable(false, () => LogUnreachable(failure));
            }
        }
    }

    /// <summary>
    /// Queries each leader of the watched partitions in turn, then the group's coordinator. Returns the first query that
    /// failed, or null.
    /// </summary>
    private CheckFailure? Check(IReadOnlyList<TopicPartition> watched, TimeSpan timeout)
    {
        foreach (TopicPartition queried in OnePartitionPerLeader(watched, timeout))
        {
            // A stop waits for the check, so it does not wait for the remaining partitions.
            if (stopping.IsCancellationRequested)
            {
                return null;
            }

            ErrorCode? failure = Query(queried, timeout);
            if (failure is not null)
            {
                return new CheckFailure(queried, failure.Value);
            }
        }

        if (stopping.IsCancellationRequested)
        {
            return null;
        }

        ErrorCode? coordinatorFailure = QueryCoordinator(watched[0], timeout);
        return coordinatorFailure is null ? null : new CheckFailure(null, coordinatorFailure.Value);
    }

    /// <summary>
    /// Returns the watched partitions without those whose leader broker an earlier one already has, by fresh metadata of
    /// their topics. A partition whose leader the metadata does not name stays. Returns <paramref name="watched"/> itself
    /// when it has one partition, or when a metadata request fails.
    /// </summary>
    private IReadOnlyList<TopicPartition> OnePartitionPerLeader(IReadOnlyList<TopicPartition> watched, TimeSpan timeout)
    {
        if (watched.Count == 1)
        {
            return watched;
        }

        var leaders = new Dictionary<TopicPartition, int>();
        foreach (string topic in watched.Select(partition => partition.Topic).Distinct())
        {
            Metadata topicMetadata;
            try
            {
                topicMetadata = metadata.GetMetadata(topic, timeout);
            }
            catch (KafkaException)
            {
                return watched;
            }

            // A partition without a leader has the leader -1, and a topic that does not exist has an error and no partitions.
            IEnumerable<PartitionMetadata> led = topicMetadata.Topics
                .Where(described => described.Topic == topic && described.Error.Code == ErrorCode.NoError)
                .SelectMany(described => described.Partitions)
                .Where(partition => partition.Leader >= 0);
            foreach (PartitionMetadata partition in led)
            {
                leaders[new TopicPartition(topic, partition.PartitionId)] = partition.Leader;
            }
        }

        var queriedLeaders = new HashSet<int>();
        return watched.Where(partition => !leaders.TryGetValue(partition, out int leader) || queriedLeaders.Add(leader)).ToList();
    }

    /// <summary>Serves the client's queued events (its errors), which otherwise pile up during an outage. It has no assignment, so it reads no record.</summary>
    private void ServeEvents()
    {
        try
        {
            _ = client.Consume(TimeSpan.Zero);
        }
        catch (KafkaException)
        {
            // Only the queries decide availability.
        }
    }

    /// <summary>Asks the leader of <paramref name="queried"/> for its watermarks. Returns the error, or null when the leader responded.</summary>
    private ErrorCode? Query(TopicPartition queried, TimeSpan timeout)
    {
        try
        {
            _ = client.QueryWatermarkOffsets(queried, timeout);
            return null;
        }
        catch (KafkaException exception)
        {
            RefreshMetadata(queried.Topic, timeout);
            return exception.Error.Code;
        }
    }

    /// <summary>
    /// Requests the committed offset of <paramref name="partition"/> from the group's coordinator. Returns the error, or null
    /// when the coordinator responded. The client never joins the group, so the request changes nothing in it.
    /// </summary>
    private ErrorCode? QueryCoordinator(TopicPartition partition, TimeSpan timeout)
    {
        try
        {
            _ = client.Committed([partition], timeout);
            return null;
        }
        catch (KafkaException exception)
        {
            return exception.Error.Code;
        }
    }

    private void LogUnreachable(CheckFailure failure)
    {
        if (failure.Leader is { } partition)
        {
            LogLeaderUnreachable(logger, partition, FailedChecksBeforeUnavailable, failure.Code);
        }
        else
        {
            LogCoordinatorUnreachable(logger, FailedChecksBeforeUnavailable, groupId, failure.Code);
        }
    }

    // A watermark query reads the leader from the client's cached metadata, which a client that fetches nothing refreshes
    // only every topic.metadata.refresh.interval.ms (5 minutes by default). After a leader outage the embedded broker's
    // client kept failing with Local_UnknownPartition for a minute while the leader was back, so a failed query requests
    // fresh metadata.
    private void RefreshMetadata(string topic, TimeSpan timeout)
    {
        try
        {
            _ = metadata.GetMetadata(topic, timeout);
        }
        catch (KafkaException)
        {
            // The next query finds out whether the leader responds.
        }
    }

    /// <summary>Sets <see cref="IsAvailable"/>. When it changed, writes <paramref name="log"/>, calls back and returns true.</summary>
    private bool SetAvailable(bool value, Action? log)
    {
        lock (availabilityLock)
        {
            if (available == value)
            {
                return false;
            }

            available = value;
        }

        log?.Invoke();
        availabilityChanged();
        return true;
    }

    [LoggerMessage(EventId = 241, Level = LogLevel.Warning, Message = "{Checks} broker checks in a row failed. The last failed query went to the leader of {Partition} ({ErrorCode}). The learner is not ready and checks again every second")]
    private static partial void LogLeaderUnreachable(ILogger logger, TopicPartition partition, int checks, ErrorCode errorCode);

    [LoggerMessage(EventId = 233, Level = LogLevel.Warning, Message = "{Checks} broker checks in a row failed. The last failed query went to the coordinator of consumer group {GroupId} ({ErrorCode}), without which the learner loses its partitions and cannot commit. The learner is not ready and checks again every second")]
    private static partial void LogCoordinatorUnreachable(ILogger logger, int checks, string groupId, ErrorCode errorCode);

    [LoggerMessage(EventId = 240, Level = LogLevel.Information, Message = "The leaders of {Partitions} and the coordinator of group {GroupId} respond again, so the learner is ready")]
    private static partial void LogLeadersRespond(ILogger logger, IReadOnlyList<TopicPartition> partitions, string groupId);

    /// <summary>The query that failed a check: to the leader of <see cref="Leader"/>, or to the group's coordinator when it is null.</summary>
    private sealed record CheckFailure(TopicPartition? Leader, ErrorCode Code);
}

/// <summary>How often and how long <see cref="BrokerWatchdog"/> waits for the partition leaders.</summary>
/// <param name="CheckInterval">Between checks while the leaders respond.</param>
/// <param name="CheckTimeout">Of a query while the leaders respond.</param>
/// <param name="ProbeInterval">Between checks after a failed one, and while the broker is unavailable.</param>
/// <param name="ProbeTimeout">Of a query while the broker is unavailable.</param>
public sealed record BrokerWatchdogTimings(TimeSpan CheckInterval, TimeSpan CheckTimeout, TimeSpan ProbeInterval, TimeSpan ProbeTimeout)
{
    /// <summary>A check every 5 s with a 1 s timeout, a probe every second with a 250 ms timeout.</summary>
    public static BrokerWatchdogTimings Default { get; } =
        new(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(250));

    /// <summary>Throws when an interval or a timeout is not positive, which would otherwise end the watchdog's thread.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is zero or negative.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(CheckInterval, TimeSpan.Zero, nameof(CheckInterval));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(CheckTimeout, TimeSpan.Zero, nameof(CheckTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ProbeInterval, TimeSpan.Zero, nameof(ProbeInterval));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ProbeTimeout, TimeSpan.Zero, nameof(ProbeTimeout));
    }
}
