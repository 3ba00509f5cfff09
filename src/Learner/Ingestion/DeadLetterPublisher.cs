using System.Diagnostics;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner.Ingestion;

/// <summary>
/// Sends records that failed validation to the dead-letter topic, unchanged, with the reason and the
/// source topic, partition and offset in headers, so that no record is dropped silently.
/// </summary>
public sealed partial class DeadLetterPublisher : IDisposable
{
    public const string ReasonHeader = "dlq-reason";
    public const string SourceTopicHeader = "dlq-source-topic";
    public const string SourcePartitionHeader = "dlq-source-partition";
    public const string SourceOffsetHeader = "dlq-source-offset";

    private static readonly TimeSpan QueueFullPollInterval = TimeSpan.FromMilliseconds(100);

    private readonly IProducer<byte[]?, byte[]?> producer;
    private readonly ILogger logger;
    private readonly Lock failureLogLock = new();
    private long failures;

    // Dead letters queued and not yet reported delivered or failed. librdkafka's queue length, which Flush returns,
    // also counts delivery reports and error events not yet served, so it is not used as the undelivered count.
    private long outstanding;

    // Stopwatch timestamp of the last error 210, 0 before the first, and the failures counted since it.
    private long failureLoggedAt;
    private long failuresSinceLogged;

    public DeadLetterPublisher(string bootstrapServers, string topic, ILogger logger, KafkaClientProperties? kafkaProperties = null)
    {
        Topic = topic;
        this.logger = logger;
        ProducerConfig config = (kafkaProperties ?? KafkaClientProperties.None).ApplyTo(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            Acks = Acks.All,
            EnableIdempotence = false,
            LingerMs = 5,
        });
        var clientLog = new KafkaClientLog(logger);
        producer = new ProducerBuilder<byte[]?, byte[]?>(config)
            .SetLogHandler(clientLog.OnLog)
            .SetErrorHandler(clientLog.OnError)
            .Build();
    }

    public string Topic { get; }

    /// <summary>
    /// Maximum time that <see cref="Publish"/> waits for room in a full producer queue before it throws. 30 s by default.
    /// </summary>
    public TimeSpan QueueFullTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Minimum time between two error logs of failed dead letters. The first failure is logged at once, and the next
    /// logged one gives the failures since. The failure counter metric counts every one. 1 minute by default.
    /// </summary>
    public TimeSpan FailureLogInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Maximum time that <see cref="Dispose"/> waits for dead letters not yet acknowledged. 5 s outside tests.</summary>
    internal TimeSpan CloseFlushTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Test seam that runs in <see cref="Dispose"/> just before the producer is closed, which still happens when it
    /// throws. Null outside tests.
    /// </summary>
    internal Action? BeforeProducerClose { get; init; }

    /// <summary>
    /// Queues <paramref name="source"/> for the dead-letter topic with <paramref name="reason"/>. A dead letter that the
    /// producer rejects as too large or the broker does not acknowledge is logged and counted, not thrown. While the
    /// producer's queue is full this waits for room, up to <see cref="QueueFullTimeout"/>.
    /// </summary>
    /// <exception cref="ProduceException{TKey, TValue}">The queue stayed full for <see cref="QueueFullTimeout"/>, or a fatal error.</exception>
    public void Publish(ConsumeResult<byte[]?, byte[]?> source, string reason)
    {
        ArgumentNullException.ThrowIfNull(source);
        var headers = new Headers
        {
            { ReasonHeader, Encoding.UTF8.GetBytes(reason) },
            { SourceTopicHeader, Encoding.UTF8.GetBytes(source.Topic) },
            { SourcePartitionHeader, Encoding.UTF8.GetBytes(source.Partition.Value.ToString(CultureInfo.InvariantCulture)) },
            { SourceOffsetHeader, Encoding.UTF8.GetBytes(source.Offset.Value.ToString(CultureInfo.InvariantCulture)) },
        };
        var message = new Message<byte[]?, byte[]?> { Key = source.Message.Key, Value = source.Message.Value, Headers = headers };
        long started = Stopwatch.GetTimestamp();
        while (true)
        {
            bool queued = false;
            Interlocked.Increment(ref outstanding);
            try
            {
                producer.Produce(Topic, message, report => OnDelivered(source.TopicPartitionOffset, report.Error));
                queued = true;
                return;
            }
            catch (ProduceException<byte[]?, byte[]?> exception)
                when (exception.Error.Code == ErrorCode.Local_QueueFull && Stopwatch.GetElapsedTime(started) < QueueFullTimeout)
            {
                // The queue drains as the broker acknowledges, and Poll serves those reports. A queue still full after
                // the timeout throws, which stops the learner before the record's offset is committed.
                producer.Poll(QueueFullPollInterval);
            }
            catch (ProduceException<byte[]?, byte[]?> exception)
                when (!exception.Error.IsFatal && exception.Error.Code != ErrorCode.Local_QueueFull)
            {
                // librdkafka rejects a record larger than message.max.bytes (1,000,000 bytes by default, less than
                // Learner:MaxRecordBytes) before sending it. Throwing would stop the learner at the same record on
                // every restart, so the record stays only in the source topic, and the failure is logged and counted.
                CountFailure(source.TopicPartitionOffset, exception.Error.Reason);
                return;
            }
            finally
            {
                // A dead letter that the producer did not queue gets no delivery report.
                if (!queued)
                {
                    Interlocked.Decrement(ref outstanding);
                }
            }
        }
    }

    /// <summary>Waits until every dead letter sent so far is acknowledged, or the timeout passes.</summary>
    public void Flush(TimeSpan timeout) => producer.Flush(timeout);

    /// <summary>
    /// Waits up to <see cref="CloseFlushTimeout"/> for dead letters not yet acknowledged, and closes the producer. Those
    /// still undelivered then are dropped without a delivery report, so they are logged and counted here.
    /// </summary>
    public void Dispose()
    {
        producer.Flush(CloseFlushTimeout);

        // A delivery report served after the flush still ends its dead letter's count, so an acknowledgement that
        // missed the flush is not reported as undelivered. Confluent.Kafka's Producer.Dispose joins its poll thread and
        // serves no report once the handle is closed, so the dead letters still counted after it never got one.
        // UndeliveredCountIsExact checks that no report of the purge at close arrives, with Confluent.Kafka 2.16.
        try
        {
            BeforeProducerClose?.Invoke();
        }
        finally
        {
            producer.Dispose();
        }

        long undelivered = Interlocked.Read(ref outstanding);
        if (undelivered > 0)
        {
            Interlocked.Add(ref failures, undelivered);
            ContinualServeMetrics.DeadLetterFailures.Inc(undelivered);
            LogUndelivered(logger, undelivered, Topic, CloseFlushTimeout.TotalSeconds);
        }

        LogFailuresNotYetReported();
    }

    private void OnDelivered(TopicPartitionOffset source, Error error)
    {
        Interlocked.Decrement(ref outstanding);
        if (error.IsError)
        {
            CountFailure(source, error.Reason);
        }
    }

    /// <summary>Counts a dead letter that was not written, and logs it unless one was logged within <see cref="FailureLogInterval"/>.</summary>
    private void CountFailure(TopicPartitionOffset source, string reason)
    {
        long count = Interlocked.Increment(ref failures);
        ContinualServeMetrics.DeadLetterFailures.Inc();
        long sinceLogged;
        lock (failureLogLock)
        {
            failuresSinceLogged++;
            if (failureLoggedAt != 0 && Stopwatch.GetElapsedTime(failureLoggedAt) < FailureLogInterval)
            {
                return;
            }

            sinceLogged = failuresSinceLogged;
            failuresSinceLogged = 0;
            failureLoggedAt = Stopwatch.GetTimestamp();
        }

        LogDeadLetterFailed(logger, source, reason, count, sinceLogged);
    }

    // Failures after the last error 210 would otherwise show only in the metric.
    private void LogFailuresNotYetReported()
    {
        long notLogged;
        lock (failureLogLock)
        {
            notLogged = failuresSinceLogged;
            failuresSinceLogged = 0;
        }

        if (notLogged > 0)
        {
            LogFailuresNotLogged(logger, notLogged, Topic, Interlocked.Read(ref failures));
        }
    }

    // The source offsets of these records may already be committed, so a restart does not read them again.
    [LoggerMessage(EventId = 264, Level = LogLevel.Error, Message = "{Count} dead letters on {Topic} were not delivered within {Seconds} s when the learner stopped, so their records are only in the source topic")]
    private static partial void LogUndelivered(ILogger logger, long count, string topic, double seconds);

    [LoggerMessage(EventId = 210, Level = LogLevel.Error, Message = "Could not write dead letter for {Source}: {Reason} ({SinceLogged} failures since the last such message, {Count} so far)")]
    private static partial void LogDeadLetterFailed(ILogger logger, TopicPartitionOffset source, string reason, long count, long sinceLogged);

    [LoggerMessage(EventId = 269, Level = LogLevel.Error, Message = "{NotLogged} more dead letters for {Topic} could not be written after the last error 210 ({Count} failures in all), so their records are only in the source topic")]
    private static partial void LogFailuresNotLogged(ILogger logger, long notLogged, string topic, long count);
}
