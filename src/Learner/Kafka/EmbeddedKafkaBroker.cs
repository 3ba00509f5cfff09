using System.Runtime.InteropServices;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ContinualServe.Learner.Kafka;

/// <summary>
/// In-process Kafka cluster for development and tests, backed by librdkafka's mock cluster.
/// The mock brokers listen on ephemeral loopback ports, keep all records in memory and do not
/// support the admin CreateTopics request, so topics are created through <see cref="CreateTopic"/>
/// or by producer auto-creation.
/// </summary>
/// <remarks>
/// NOTE: each mock partition keeps at most 5 MiB or 100,000 message sets (rdkafka_mock.c in librdkafka 2.x)
/// and drops the oldest beyond that, so a consumer whose committed offset falls below the new start offset
/// gets OFFSET_OUT_OF_RANGE and auto.offset.reset applies.
/// </remarks>
public sealed partial class EmbeddedKafkaBroker : IDisposable
{
    private readonly Lock _lock = new();
    private readonly ILogger _logger;
    private IntPtr _handle;
    private IntPtr _cluster;

    private EmbeddedKafkaBroker(IntPtr handle, IntPtr cluster, string bootstrapServers, ILogger logger)
    {
        _handle = handle;
        _cluster = cluster;
        BootstrapServers = bootstrapServers;
        _logger = logger;
    }

    /// <summary>Comma-separated host:port list of the mock brokers, for bootstrap.servers.</summary>
    public string BootstrapServers { get; }

    /// <summary>
    /// Starts a mock cluster with <paramref name="brokerCount"/> brokers and a consumer group
    /// initial rebalance delay of 0 ms, so that a group assigns partitions as soon as members join.
    /// </summary>
    public static EmbeddedKafkaBroker Start(int brokerCount = 1, ILogger? logger = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(brokerCount, 1);
        logger ??= NullLogger.Instance;

        IntPtr configuration = LibrdkafkaMockNative.rd_kafka_conf_new();
        IntPtr handle;
        try
        {
            LibrdkafkaMockNative.SetConfiguration(configuration, "client.id", "continualserve-embedded-kafka");

            // The owning handle has no bootstrap.servers and never connects, so its notice-level
            // "No bootstrap.servers configured" warning is noise. Warnings and errors still reach stderr.
            LibrdkafkaMockNative.SetConfiguration(configuration, "log_level", "4");
            handle = LibrdkafkaMockNative.CreateProducerHandle(configuration);
        }
        catch
        {
            LibrdkafkaMockNative.rd_kafka_conf_destroy(configuration);
            throw;
        }

        IntPtr cluster = LibrdkafkaMockNative.rd_kafka_mock_cluster_new(handle, brokerCount);
        if (cluster == IntPtr.Zero)
        {
            LibrdkafkaMockNative.rd_kafka_destroy(handle);
            throw new InvalidOperationException(
                $"rd_kafka_mock_cluster_new failed to create a mock cluster with {brokerCount} brokers; see the librdkafka log on stderr for the cause.");
        }

        LibrdkafkaMockNative.rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
        string bootstrapServers = LibrdkafkaMockNative.GetBootstrapServers(cluster);
        LogStarted(logger, brokerCount, bootstrapServers);
        return new EmbeddedKafkaBroker(handle, cluster, bootstrapServers, logger);
    }

    /// <summary>
    /// Creates <paramref name="topic"/> on the mock cluster.
    /// </summary>
    /// <exception cref="InvalidOperationException">The mock cluster returned an error code, for example because the topic exists.</exception>
    /// <exception cref="ObjectDisposedException">The broker was disposed.</exception>
    public void CreateTopic(string topic, int partitionCount, int replicationFactor = 1)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(topic);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitionCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(replicationFactor, 1);

        int errorCode;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
            errorCode = LibrdkafkaMockNative.rd_kafka_mock_topic_create(_cluster, topic, partitionCount, replicationFactor);
        }

        if (errorCode != 0)
        {
            var error = new Error((ErrorCode)errorCode);
            throw new InvalidOperationException(
                $"Failed to create topic '{topic}' with {partitionCount} partitions and replication factor {replicationFactor} "
                + $"on the mock cluster: {error.Code} ({errorCode}): {error.Reason}. "
                + "Check that the topic does not exist yet and that the replication factor does not exceed the broker count.");
        }

        LogTopicCreated(_logger, topic, partitionCount, replicationFactor);
    }

    /// <summary>
    /// Takes mock broker <paramref name="brokerId"/> (1 to the broker count) down: librdkafka's mock closes its
    /// connections and refuses new ones until <see cref="SetBrokerUp"/>, keeping its port and its records.
    /// </summary>
    public void SetBrokerDown(int brokerId = 1) => SetBrokerState(brokerId, up: false);

    /// <summary>Lets broker <paramref name="brokerId"/> accept connections again after <see cref="SetBrokerDown"/>.</summary>
    public void SetBrokerUp(int brokerId = 1) => SetBrokerState(brokerId, up: true);

    /// <summary>Makes broker <paramref name="brokerId"/> the leader of one partition of <paramref name="topic"/>.</summary>
    public void SetPartitionLeader(string topic, int partition, int brokerId) =>
        ChangeCluster(
            cluster => LibrdkafkaMockNative.rd_kafka_mock_partition_set_leader(cluster, topic, partition, brokerId),
            $"make broker {brokerId} the leader of {topic} [{partition}]");

    /// <summary>Makes broker <paramref name="brokerId"/> the coordinator of consumer group <paramref name="groupId"/>.</summary>
    public void SetGroupCoordinator(string groupId, int brokerId) =>
        ChangeCluster(
            cluster => LibrdkafkaMockNative.rd_kafka_mock_coordinator_set(cluster, "group", groupId, brokerId),
            $"make broker {brokerId} the coordinator of group {groupId}");

    /// <summary>
    /// Sets how long the group coordinator waits after the first member joins an empty group before it assigns
    /// partitions (Kafka's group.initial.rebalance.delay.ms). <see cref="Start"/> sets 0. Tests set it before the group's
    /// first member joins.
    /// </summary>
    public void SetInitialRebalanceDelay(TimeSpan delay)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        ChangeCluster(
            cluster =>
            {
                LibrdkafkaMockNative.rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, (int)delay.TotalMilliseconds);
                return 0;
            },
            $"set the initial rebalance delay to {delay.TotalMilliseconds} ms");
    }

    /// <summary>
    /// Starts recording the requests that the mock brokers receive, for <see cref="CountRequests"/>, and drops any
    /// recorded before.
    /// </summary>
    public void StartRequestTracking() =>
        ChangeCluster(
            cluster =>
            {
                LibrdkafkaMockNative.rd_kafka_mock_start_request_tracking(cluster);
                LibrdkafkaMockNative.rd_kafka_mock_clear_requests(cluster);
                return 0;
            },
            "start tracking requests");

    /// <summary>
    /// Returns how many requests of Kafka API <paramref name="apiKey"/> (2 is ListOffsets, 3 is Metadata) each broker
    /// received since <see cref="StartRequestTracking"/>, by broker id. A broker that received none is left out.
    /// </summary>
    public IReadOnlyDictionary<int, int> CountRequests(short apiKey)
    {
        var counts = new Dictionary<int, int>();
        ChangeCluster(
            cluster =>
            {
                IntPtr requests = LibrdkafkaMockNative.rd_kafka_mock_get_requests(cluster, out nuint count);
                try
                {
                    for (nuint index = 0; index < count; index++)
                    {
                        IntPtr request = Marshal.ReadIntPtr(requests, checked((int)index * IntPtr.Size));
                        if (LibrdkafkaMockNative.rd_kafka_mock_request_api_key(request) == apiKey)
                        {
                            int brokerId = LibrdkafkaMockNative.rd_kafka_mock_request_id(request);
                            counts[brokerId] = counts.GetValueOrDefault(brokerId) + 1;
                        }
                    }
                }
                finally
                {
                    LibrdkafkaMockNative.rd_kafka_mock_request_destroy_array(requests, count);
                }

                return 0;
            },
            "read the tracked requests");
        return counts;
    }

    private void SetBrokerState(int brokerId, bool up)
    {
        ChangeCluster(
            cluster => up
                ? LibrdkafkaMockNative.rd_kafka_mock_broker_set_up(cluster, brokerId)
                : LibrdkafkaMockNative.rd_kafka_mock_broker_set_down(cluster, brokerId),
            $"set mock broker {brokerId} {(up ? "up" : "down")}");
        LogBrokerState(_logger, brokerId, up);
    }

    // Runs one mock-cluster call under the lock and turns its rd_kafka_resp_err_t into an exception.
    private void ChangeCluster(Func<IntPtr, int> change, string action)
    {
        int errorCode;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
            errorCode = change(_cluster);
        }

        if (errorCode != 0)
        {
            var error = new Error((ErrorCode)errorCode);
            throw new InvalidOperationException($"Failed to {action}: {error.Code}: {error.Reason}.");
        }
    }

    /// <summary>
    /// Destroys the mock cluster, closing its listeners, and then the librdkafka handle that owns it.
    /// Safe to call more than once and from any thread.
    /// </summary>
    public void Dispose()
    {
        IntPtr cluster;
        IntPtr handle;
        lock (_lock)
        {
            cluster = _cluster;
            handle = _handle;
            _cluster = IntPtr.Zero;
            _handle = IntPtr.Zero;
        }

        if (handle == IntPtr.Zero)
        {
            return;
        }

        // The cluster must go before the handle because it runs on that handle's threads.
        LibrdkafkaMockNative.rd_kafka_mock_cluster_destroy(cluster);
        LibrdkafkaMockNative.rd_kafka_destroy(handle);
        LogStopped(_logger, BootstrapServers);
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Started embedded Kafka mock cluster with {BrokerCount} brokers at {BootstrapServers}")]
    private static partial void LogStarted(ILogger logger, int brokerCount, string bootstrapServers);

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "Created topic {Topic} with {PartitionCount} partitions and replication factor {ReplicationFactor}")]
    private static partial void LogTopicCreated(ILogger logger, string topic, int partitionCount, int replicationFactor);

    [LoggerMessage(EventId = 303, Level = LogLevel.Information, Message = "Mock broker {BrokerId} is up: {Up}")]
    private static partial void LogBrokerState(ILogger logger, int brokerId, bool up);

    [LoggerMessage(EventId = 302, Level = LogLevel.Information, Message = "Stopped embedded Kafka mock cluster at {BootstrapServers}")]
    private static partial void LogStopped(ILogger logger, string bootstrapServers);
}
