using System.Diagnostics;
using Confluent.Kafka;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner;

/// <summary>
/// Broker faults and operator control of the learner: readiness while the brokers are unreachable, and
/// pausing and resuming consumption. librdkafka reconnects by itself with exponential backoff; the learner
/// keeps polling, reports itself not ready meanwhile, and continues from its positions when a broker responds again.
/// </summary>
public sealed partial class ContinualLearner
{
    private static readonly TimeSpan BrokerProbeInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan BrokerProbeTimeout = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan BrokerCheckInterval = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan BrokerCheckTimeout = TimeSpan.FromSeconds(1);
    private const int FailedChecksBeforeUnavailable = 2;

    private volatile bool pauseRequested;
    private long brokerProbedAt;
    private volatile bool brokerAvailable = true;
    private bool pauseApplied;
    private long kafkaErrorCount;
    private long brokerCheckedAt;
    private int failedBrokerChecks;
    private long pauseFileCheckedAt;
    private bool pausedByFile;

    /// <summary>True while the learner is running, reaches a broker, and is neither paused nor diverged.</summary>
    public bool IsReady
    {
        get
        {
            LearnerStatus current = Status;
            return current.IsRunning && brokerAvailable && !IsPaused && !current.IsDiverged;
        }
    }

    public bool IsPaused => pauseRequested || pausedByFile;

    /// <summary>Stops consuming after the records already read (at most 64). The idle round then trains and publishes pending work.</summary>
    public void PauseLearning()
    {
        pauseRequested = true;
        LogPauseRequested(logger, true);
        ReportReadiness();
    }

    /// <summary>Continues consuming; after a divergence this also clears the diverged state.</summary>
    public void ResumeLearning()
    {
        pauseRequested = false;
        lock (statusLock)
        {
            status = status with { IsDiverged = false };
        }

        LogPauseRequested(logger, false);
        ReportReadiness();
    }

    /// <summary>Runs between records: applies a requested rollback and the pause state, then measures lag when due.</summary>
    private void BeforeConsume(IConsumer<byte[]?, byte[]?> consumer)
    {
        RollBackIfRequested(consumer);
        ApplyPauseRequest(consumer);
        CheckPartitionLeader(consumer);
        RefreshConsumerLag(consumer);
    }

    /// <summary>
    /// Pauses or resumes fetching on the assigned partitions to match the operator's request, made through
    /// <see cref="PauseLearning"/> or the management API's marker file in the model store (checked twice a second).
    /// </summary>
    private void ApplyPauseRequest(IConsumer<byte[]?, byte[]?> consumer)
    {
        if (Stopwatch.GetElapsedTime(pauseFileCheckedAt) >= TimeSpan.FromMilliseconds(500))
        {
            pauseFileCheckedAt = Stopwatch.GetTimestamp();
            bool paused = StoreControlFiles.IsLearningPaused(store.RootDirectory);
            if (paused != pausedByFile)
            {
                pausedByFile = paused;
                if (!paused)
                {
                    lock (statusLock)
                    {
                        status = status with { IsDiverged = false };
                    }
                }

                LogPauseRequested(logger, paused);
                ReportReadiness();
            }
        }

        bool requested = IsPaused;
        if (requested)
        {
            // Partitions assigned after a rebalance start unpaused, so pause the whole assignment every time.
            consumer.Pause(consumer.Assignment);
        }
        else if (pauseApplied)
        {
            consumer.Resume(consumer.Assignment);
        }

        pauseApplied = requested;
    }

    // After all brokers went down, a consumed record does not show that one is back, because librdkafka keeps
    // returning records it fetched before the outage. The learner therefore queries the partition leader's watermarks,
    // at most once per probe interval, and marks the broker available only when the query succeeds. An idle poll
    // probes too, so recovery is reported without new records.
    private void ObserveConsume(IConsumer<byte[]?, byte[]?> consumer, ConsumeResult<byte[]?, byte[]?>? result)
    {
        if (brokerAvailable || Stopwatch.GetElapsedTime(brokerProbedAt) < BrokerProbeInterval)
        {
            return;
        }

        TopicPartition partition = result?.TopicPartition ?? ProbedPartition(consumer);
        brokerProbedAt = Stopwatch.GetTimestamp();
        try
        {
            _ = consumer.QueryWatermarkOffsets(partition, BrokerProbeTimeout);
        }
        catch (KafkaException)
        {
            return;
        }

        brokerAvailable = true;
        long errors = Interlocked.Read(ref kafkaErrorCount);
        LogBrokerAvailable(logger, errors);
        ReportReadiness();
    }

    // librdkafka reports all brokers down only when every broker connection is down, so a partition leader that is
    // down while the group coordinator still responds goes unreported. The learner therefore queries the leader of its
    // first partition (see ProbedPartition) every check interval. Two failed queries in a row mark the broker
    // unavailable, so one slow response does not flip readiness, and ObserveConsume then probes until a query succeeds.
    private void CheckPartitionLeader(IConsumer<byte[]?, byte[]?> consumer)
    {
        TimeSpan interval = failedBrokerChecks > 0 ? BrokerProbeInterval : BrokerCheckInterval;
        if (!brokerAvailable || Stopwatch.GetElapsedTime(brokerCheckedAt) < interval)
        {
            return;
        }

        TopicPartition partition = ProbedPartition(consumer);
        brokerCheckedAt = Stopwatch.GetTimestamp();
        try
        {
            _ = consumer.QueryWatermarkOffsets(partition, BrokerCheckTimeout);
            failedBrokerChecks = 0;
        }
        catch (KafkaException exception)
        {
            failedBrokerChecks++;
            if (failedBrokerChecks >= FailedChecksBeforeUnavailable)
            {
                failedBrokerChecks = 0;
                LogPartitionLeaderUnreachable(logger, partition, FailedChecksBeforeUnavailable, exception.Error.Code);
                MarkBrokerUnavailable();
            }
        }
    }

    // The first assigned partition, or else the topic's partition 0. A session that times out during an outage revokes
    // the assignment, and an idle group member has none. Without the fallback neither was probed, and only
    // librdkafka's all-brokers-down error could mark the learner not ready.
    private TopicPartition ProbedPartition(IConsumer<byte[]?, byte[]?> consumer) =>
        consumer.Assignment.FirstOrDefault() ?? new TopicPartition(options.Topic, new Partition(0));

    /// <summary>Handles librdkafka's error callback: logs (rate-limited) and marks the learner not ready when all brokers are down.</summary>
    private void OnKafkaError(Error error)
    {
        long count = Interlocked.Increment(ref kafkaErrorCount);
        if (count <= 10 || count % 100 == 0)
        {
            LogKafkaError(logger, error.Code, error.Reason, error.IsFatal);
        }

        if (error.Code == ErrorCode.Local_AllBrokersDown && brokerAvailable)
        {
            LogBrokersDown(logger);
            MarkBrokerUnavailable();
        }
    }

    private void MarkBrokerUnavailable()
    {
        brokerAvailable = false;
        brokerProbedAt = Stopwatch.GetTimestamp();
        ReportReadiness();
    }

    private void ReportReadiness()
    {
        lock (statusLock)
        {
            status = status with { IsPaused = IsPaused, IsBrokerAvailable = brokerAvailable };
        }

        ReliabilityMetrics.LearnerReady.Set(IsReady ? 1 : 0);
    }

    [LoggerMessage(EventId = 238, Level = LogLevel.Information, Message = "Learning paused: {Paused}")]
    private static partial void LogPauseRequested(ILogger logger, bool paused);

    [LoggerMessage(EventId = 239, Level = LogLevel.Warning, Message = "All Kafka brokers are down; the learner is not ready and keeps retrying with backoff")]
    private static partial void LogBrokersDown(ILogger logger);

    [LoggerMessage(EventId = 241, Level = LogLevel.Warning, Message = "The leader of {Partition} did not respond to {Queries} watermark queries in a row ({ErrorCode}); the learner is not ready and retries every second")]
    private static partial void LogPartitionLeaderUnreachable(ILogger logger, TopicPartition partition, int queries, ErrorCode errorCode);

    [LoggerMessage(EventId = 240, Level = LogLevel.Information, Message = "A Kafka broker responds again after {ErrorCount} client errors; the learner resumes")]
    private static partial void LogBrokerAvailable(ILogger logger, long errorCount);
}
