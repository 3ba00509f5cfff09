using System.Diagnostics;
using Confluent.Kafka;
using ContinualServe.Learner.Faults;
using ContinualServe.Learner.Kafka;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner;

/// <summary>
/// Broker faults and operator control of the learner: readiness while the brokers are unreachable, and
/// pausing and resuming consumption. librdkafka reconnects by itself with exponential backoff; the learner
/// keeps polling, <see cref="BrokerWatchdog"/> reports it not ready meanwhile, and it continues from its positions
/// when a broker responds again.
/// </summary>
public sealed partial class ContinualLearner
{
    private static readonly TimeSpan LagQueryTimeout = TimeSpan.FromMilliseconds(250);

    // How often the learner thread reads the store's pause marker, which the management API writes.
    private static readonly TimeSpan PauseMarkerCheckInterval = TimeSpan.FromMilliseconds(500);

    private readonly RepeatedLogSampler kafkaErrorSampler = new();
    private volatile bool pauseRequested;
    private volatile BrokerWatchdog? brokerWatchdog;
    private volatile TopicPartition[]? assignedPartitions;
    private bool pauseApplied;
    private long pauseFileCheckedAt;
    private bool pausedByFile;

    /// <summary>
    /// True while the learner is running, reaches a broker and has measured its consumer lag, is neither paused nor
    /// diverged, and has no stalled round write, file read or pause marker write. The lag is measured once the group has
    /// assigned partitions, or none, and the learner has queried each assigned one.
    /// </summary>
    public bool IsReady
    {
        get
        {
            LearnerStatus current = Status;
            return IsReadyWith(current, BrokerAvailable, IsPaused);
        }
    }

    public bool IsPaused => pauseRequested || pausedByFile;

    /// <summary>What the broker watchdog last decided; true while no watchdog runs.</summary>
    private bool BrokerAvailable => brokerWatchdog?.IsAvailable ?? true;

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
        RefreshConsumerLag(consumer);
    }

    /// <summary>
    /// Pauses or resumes fetching on the assigned partitions to match the operator's request, made through
    /// <see cref="PauseLearning"/> or the management API's marker file in the model store (checked twice a second).
    /// </summary>
    private void ApplyPauseRequest(IConsumer<byte[]?, byte[]?> consumer)
    {
        if (RefreshPauseMarker())
        {
            // A read that outlasted PausedPollInterval paused the assignment. It stays paused if the marker asks for it.
            ResumeAfterWork(consumer);
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

    /// <summary>
    /// Reads the store's pause marker when <see cref="PauseMarkerCheckInterval"/> has passed since the last read, and
    /// reports a change in the learner's status. Returns whether it read the marker. Leaves the consumer alone.
    /// </summary>
    private bool RefreshPauseMarker()
    {
        if (Stopwatch.GetElapsedTime(pauseFileCheckedAt) < PauseMarkerCheckInterval)
        {
            return false;
        }

        pauseFileCheckedAt = Stopwatch.GetTimestamp();
        bool paused = ReadPauseMarker();
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

        return true;
    }

    // The partitions whose leaders the watchdog queries: the assigned ones, or else the topic's partition 0.
    // A session that times out during an outage revokes the assignment, and an idle group member has none. Without
    // the fallback neither would be checked, and only librdkafka's all-brokers-down error could mark the learner not ready.
    private TopicPartition[] WatchedPartitions() =>
        assignedPartitions is { Length: > 0 } assigned ? assigned : [new TopicPartition(options.Topic, new Partition(0))];

    /// <summary>Starts the watchdog that decides <see cref="LearnerStatus.IsBrokerAvailable"/> from its own thread.</summary>
    private BrokerWatchdog StartBrokerWatchdog()
    {
        var started = new BrokerWatchdog(
            options.BootstrapServers, options.GroupId, WatchedPartitions, ReportReadiness, logger, kafkaProperties: kafkaProperties, sessionTimeout: options.SessionTimeout);
        brokerWatchdog = started;
        started.Start();
        return started;
    }

    /// <summary>Handles librdkafka's error callback: logs (rate-limited) and marks the learner not ready when all brokers are down.</summary>
    private void OnKafkaError(Error error)
    {
        if (kafkaErrorSampler.Count())
        {
            LogKafkaError(logger, error.Code, error.Reason, error.IsFatal);
        }

        if (error.Code == ErrorCode.Local_AllBrokersDown && BrokerAvailable)
        {
            LogBrokersDown(logger);
            brokerWatchdog?.MarkUnavailable();
        }
    }

    // Copies the pause and broker state into the status and sets the ready gauge from it. The gauge is set under the
    // status lock, so two threads reporting at once (the watchdog and a pause request, say) cannot leave the older value.
    private void ReportReadiness()
    {
        lock (statusLock)
        {
            status = status with { IsPaused = IsPaused, IsBrokerAvailable = BrokerAvailable };
            ReliabilityMetrics.LearnerReady.Set(IsReadyWith(status, status.IsBrokerAvailable, status.IsPaused) ? 1 : 0);
        }
    }

    private static bool IsReadyWith(LearnerStatus current, bool brokerAvailable, bool paused) =>
        current.IsRunning && brokerAvailable && current.ConsumerLag is not null && !paused && !current.IsDiverged && !current.IsRoundWriteStalled && !current.IsFileReadStalled
        && !current.IsMarkerWriteStalled && !current.IsGoldenSetUnusable;

    private static void LogPauseRequested(ILogger logger, bool paused) => LogPauseChanged(logger, paused ? "paused" : "resumed");

    [LoggerMessage(EventId = 238, Level = LogLevel.Information, Message = "Learning {State}")]
    private static partial void LogPauseChanged(ILogger logger, string state);

    [LoggerMessage(EventId = 239, Level = LogLevel.Warning, Message = "All Kafka brokers are down; the learner is not ready and keeps retrying with backoff")]
    private static partial void LogBrokersDown(ILogger logger);
}
