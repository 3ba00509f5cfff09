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

    private static readonly TimeSpan DisposeFlushTimeout = TimeSpan.FromSeconds(5);

    private readonly IProducer<byte[]?, byte[]?> producer;
    private readonly ILogger logger;
    private long failures;

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
    /// Queues <paramref name="source"/> for the dead-letter topic with <paramref name="reason"/>. A dead letter that the
    /// producer rejects or the broker does not acknowledge is logged and counted, not thrown.
    /// </summary>
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
        try
        {
            producer.Produce(Topic, message, report =>
            {
                if (report.Error.IsError)
                {
                    CountFailure(source.TopicPartitionOffset, report.Error.Reason);
                }
            });
        }
        catch (ProduceException<byte[]?, byte[]?> exception) when (!exception.Error.IsFatal)
        {
            // librdkafka rejects a record before sending it when it is larger than message.max.bytes (1,000,000 bytes by
            // default, less than Learner:MaxRecordBytes) or while its queue is full. Before this catch the exception
            // stopped the learner, and every restart read the same record and stopped again.
            CountFailure(source.TopicPartitionOffset, exception.Error.Reason);
        }
    }

    /// <summary>Waits until every dead letter sent so far is acknowledged, or the timeout passes.</summary>
    public void Flush(TimeSpan timeout) => producer.Flush(timeout);

    /// <summary>
    /// Waits up to <see cref="DisposeFlushTimeout"/> for dead letters not yet acknowledged, and closes the producer. Those
    /// still undelivered then are dropped without a delivery report, so they are logged and counted here.
    /// </summary>
    public void Dispose()
    {
        int undelivered = producer.Flush(DisposeFlushTimeout);
        if (undelivered > 0)
        {
            Interlocked.Add(ref failures, undelivered);
            ContinualServeMetrics.DeadLetterFailures.Inc(undelivered);
            LogUndelivered(logger, undelivered, Topic, DisposeFlushTimeout.TotalSeconds);
        }

        producer.Dispose();
    }

    private void CountFailure(TopicPartitionOffset source, string reason)
    {
        long count = Interlocked.Increment(ref failures);
        ContinualServeMetrics.DeadLetterFailures.Inc();
        LogDeadLetterFailed(logger, source, reason, count);
    }

    // The source offsets of these records may already be committed, so a restart does not read them again.
    [LoggerMessage(EventId = 264, Level = LogLevel.Error, Message = "{Count} dead letters on {Topic} were not delivered within {Seconds} s when the learner stopped, so their records are only in the source topic")]
    private static partial void LogUndelivered(ILogger logger, int count, string topic, double seconds);

    [LoggerMessage(EventId = 210, Level = LogLevel.Error, Message = "Could not write dead letter for {Source}: {Reason} ({Count} failures so far)")]
    private static partial void LogDeadLetterFailed(ILogger logger, TopicPartitionOffset source, string reason, long count);
}
