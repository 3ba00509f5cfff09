using System.Globalization;
using System.Text;
using Confluent.Kafka;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Kafka;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner.Ingestion;

/// <summary>
/// Streams labeled examples into a topic, one record per example in <see cref="Format"/>, keyed by its id: an IDX dataset as
/// Split Fashion-MNIST tasks, task after task, or any sequence of examples in its order. When a consumer
/// position is given, the producer pauses while more than <see cref="MaxLag"/> records, or more than
/// <see cref="MaxLagBytes"/> bytes of records, are ahead of it, because a topic with small retention (the embedded
/// broker keeps about 5 MiB per partition) would otherwise delete records the consumer has not read.
/// </summary>
public sealed partial class ExampleProducer
{
    /// <summary>
    /// Maximum size in bytes of the key plus the value of one record: the producer's message.max.bytes of 1,000,000
    /// (librdkafka's default) less 36 bytes of record framing. Measured with librdkafka 2.16.0 and the embedded
    /// broker: 999,964 bytes are sent, and Produce rejects 999,966 with MsgSizeTooLarge.
    /// </summary>
    public const int MaxKeyAndValueBytes = MessageMaxBytes - 36;

    private const int MessageMaxBytes = 1_000_000;

    private readonly ILogger logger;

    public ExampleProducer(string bootstrapServers, string topic, ILogger logger)
    {
        BootstrapServers = bootstrapServers;
        Topic = topic;
        this.logger = logger;
    }

    public string BootstrapServers { get; }

    public string Topic { get; }

    /// <summary>Interval between log lines while the producer waits for a consumer that is too far behind.</summary>
    public TimeSpan WaitReportInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The consumer that pacing waits for, as the log names it, such as "consumer group 'learner'".</summary>
    public string ConsumerName { get; init; } = "the consumer";

    /// <summary>Most records allowed between the producer and the consumer position; 0 disables pacing.</summary>
    public int MaxLag { get; init; } = 1500;

    /// <summary>
    /// Maximum bytes of keys and values allowed between the producer and the consumer position while pacing is on; 0
    /// bounds only the record count. At 7 KB a record, 1,500 records take about 10 MB, more than the embedded broker keeps.
    /// </summary>
    public long MaxLagBytes { get; init; }

    /// <summary>Extra librdkafka properties of the producer (security, client id).</summary>
    public KafkaClientProperties KafkaProperties { get; init; } = KafkaClientProperties.None;

    /// <summary>Prefix of example ids, e.g. "train" gives "train-00042".</summary>
    public string IdPrefix { get; init; } = "train";

    /// <summary>Number of tasks to stream, from task 1.</summary>
    public int MaxTasks { get; init; } = int.MaxValue;

    /// <summary>The record format: JSON, or <see cref="BinaryExampleRecord"/>'s compact format. The learner reads both.</summary>
    public RecordFormat Format { get; init; } = RecordFormat.Json;

    /// <summary>
    /// Produces every example and returns how many were sent. <paramref name="consumerPosition"/> returns
    /// the total offset the consumer has reached across partitions; null disables pacing.
    /// </summary>
    public Task<long> ProduceAsync(IdxDataset dataset, Func<long>? consumerPosition, IProgress<long>? progress, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        IReadOnlyList<int> order = SplitTasks.OrderByTask(dataset, MaxTasks);
        IEnumerable<(string Key, byte[] Value)> records = order.Select(index =>
        {
            int label = dataset.Labels[index];
            string id = IdPrefix + "-" + index.ToString("D5", CultureInfo.InvariantCulture);
            int task = SplitTasks.TaskOf(label);
            ReadOnlySpan<byte> pixels = dataset.Image(index);
            return (id, Format == RecordFormat.Binary
                ? BinaryExampleRecord.Encode(id, task, label, pixels)
                : ExampleRecordCodec.Encode(id, task, label, pixels));
        });
        return ProduceRecordsAsync(records, order.Count, consumerPosition, progress, cancellation);
    }

    /// <summary>
    /// Produces <paramref name="examples"/> in their order, keyed by id, and returns how many were sent.
    /// <paramref name="count"/> is the number of examples, used in the log. <see cref="IdPrefix"/> and
    /// <see cref="MaxTasks"/> do not apply, because the examples carry their own ids and tasks.
    /// </summary>
    public Task<long> ProduceAsync(IEnumerable<LabeledExample> examples, long count, Func<long>? consumerPosition, IProgress<long>? progress, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(examples);
        IEnumerable<(string Key, byte[] Value)> records = examples.Select(example => (example.Id, Encode(Format, example)));
        return ProduceRecordsAsync(records, count, consumerPosition, progress, cancellation);
    }

    /// <summary>Encodes <paramref name="example"/> as a record in <paramref name="format"/>.</summary>
    /// <exception cref="ArgumentException">A feature is not finite.</exception>
    public static byte[] Encode(RecordFormat format, LabeledExample example)
    {
        ArgumentNullException.ThrowIfNull(example);
        return format == RecordFormat.Binary
            ? BinaryExampleRecord.Encode(example.Id, example.Task, example.Label, example.Features)
            : ExampleRecordCodec.Encode(example.Id, example.Task, example.Label, example.Features);
    }

    private async Task<long> ProduceRecordsAsync(
        IEnumerable<(string Key, byte[] Value)> records, long count, Func<long>? consumerPosition, IProgress<long>? progress, CancellationToken cancellation)
    {
        ProducerConfig config = KafkaProperties.ApplyTo(new ProducerConfig
        {
            BootstrapServers = BootstrapServers,
            Acks = Acks.All,
            LingerMs = 5,
            MessageTimeoutMs = 30_000,
            MessageMaxBytes = MessageMaxBytes,
        });
        var clientLog = new KafkaClientLog(logger);
        using IProducer<string, byte[]> producer = new ProducerBuilder<string, byte[]>(config)
            .SetLogHandler(clientLog.OnLog)
            .SetErrorHandler(clientLog.OnError)
            .Build();
        long startPosition = consumerPosition?.Invoke() ?? 0;
        long sent = 0;
        long failed = 0;
        if (consumerPosition is not null && MaxLag > 0 && MaxLagBytes > 0)
        {
            LogProducingPacedByBytes(logger, count, Topic, MaxLag, MaxLagBytes, ConsumerName);
        }
        else if (consumerPosition is not null && MaxLag > 0)
        {
            LogProducingPaced(logger, count, Topic, MaxLag, ConsumerName);
        }
        else
        {
            LogProducing(logger, count, Topic);
        }

        void OnDelivered(DeliveryReport<string, byte[]> report)
        {
            if (report.Error.IsError)
            {
                Interlocked.Increment(ref failed);
            }
        }

        var unconsumed = new UnconsumedRecords();
        foreach ((string key, byte[] value) in records)
        {
            if (consumerPosition is not null && MaxLag > 0)
            {
                await WaitForConsumer(producer, consumerPosition, startPosition, sent, unconsumed, cancellation).ConfigureAwait(false);
                unconsumed.Add(Encoding.UTF8.GetByteCount(key) + value.Length);
            }

            cancellation.ThrowIfCancellationRequested();
            var message = new Message<string, byte[]> { Key = key, Value = value };
            if (!await EnqueueAsync(producer, message, OnDelivered, () => Interlocked.Read(ref failed) > 0, cancellation).ConfigureAwait(false))
            {
                break;
            }

            sent++;
            if (sent % 1000 == 0)
            {
                progress?.Report(sent);
            }
        }

        producer.Flush(cancellation);
        if (sent % 1000 != 0)
        {
            progress?.Report(sent);
        }
        long failures = Interlocked.Read(ref failed);
        if (failures > 0)
        {
            throw new KafkaException(new Error(
                ErrorCode.Local_MsgTimedOut,
                $"{failures} of {sent} records could not be delivered to {Topic} within the delivery timeout; check that a broker at {BootstrapServers} is reachable and that the topic exists."));
        }

        LogProduced(logger, sent, Topic);
        return sent;
    }

    // Queues one record and returns false when a delivery failed while the queue was full. librdkafka queues at most
    // queue.buffering.max.messages undelivered records (100,000 by default), so a full queue waits for deliveries to
    // make room. Every queued record is delivered or fails within MessageTimeoutMs, which bounds the wait.
    private async Task<bool> EnqueueAsync(
        IProducer<string, byte[]> producer, Message<string, byte[]> message, Action<DeliveryReport<string, byte[]>> onDelivered, Func<bool> anyFailed, CancellationToken cancellation)
    {
        while (true)
        {
            try
            {
                producer.Produce(Topic, message, onDelivered);
                return true;
            }
            catch (ProduceException<string, byte[]> exception) when (exception.Error.Code == ErrorCode.Local_QueueFull)
            {
                if (anyFailed())
                {
                    return false;
                }
            }

            await Task.Delay(10, cancellation).ConfigureAwait(false);
        }
    }

    // Logs every WaitReportInterval while the consumer stays too far behind, so a stalled or paused consumer
    // does not look like a hung producer. sent counts the records produced since startPosition.
    private async Task WaitForConsumer(
        IProducer<string, byte[]> producer, Func<long> consumerPosition, long startPosition, long sent, UnconsumedRecords unconsumed, CancellationToken cancellation)
    {
        long waitStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        TimeSpan nextReport = WaitReportInterval;
        long target = startPosition + sent;
        while (true)
        {
            long position = consumerPosition();
            unconsumed.Release(position - startPosition);
            bool tooManyRecords = target - position > MaxLag;
            bool tooManyBytes = MaxLagBytes > 0 && unconsumed.Bytes > MaxLagBytes;
            if (!tooManyRecords && !tooManyBytes)
            {
                return;
            }

            TimeSpan waited = System.Diagnostics.Stopwatch.GetElapsedTime(waitStarted);
            if (waited >= nextReport && tooManyRecords)
            {
                LogWaitingForConsumer(logger, (long)waited.TotalSeconds, ConsumerName, position, target - position, MaxLag);
                nextReport += WaitReportInterval;
            }
            else if (waited >= nextReport)
            {
                LogWaitingForConsumerBytes(logger, (long)waited.TotalSeconds, ConsumerName, position, unconsumed.Bytes, MaxLagBytes);
                nextReport += WaitReportInterval;
            }

            producer.Poll(TimeSpan.Zero);
            await Task.Delay(5, cancellation).ConfigureAwait(false);
        }
    }

    [LoggerMessage(EventId = 223, Level = LogLevel.Information, Message = "Waiting {Seconds} s for {Consumer}: it is at offset {Position}, {Behind} records behind; producing resumes at {MaxLag} behind. Is the learner running and not paused, and is the group name right?")]
    private static partial void LogWaitingForConsumer(ILogger logger, long seconds, string consumer, long position, long behind, int maxLag);

    [LoggerMessage(EventId = 292, Level = LogLevel.Information, Message = "Waiting {Seconds} s for {Consumer}: it is at offset {Position}, {BehindBytes} bytes of records behind; producing resumes at {MaxLagBytes} bytes behind. Is the learner running and not paused, and is the group name right?")]
    private static partial void LogWaitingForConsumerBytes(ILogger logger, long seconds, string consumer, long position, long behindBytes, long maxLagBytes);

    [LoggerMessage(EventId = 220, Level = LogLevel.Information, Message = "Producing {Count} examples to {Topic}, at most {MaxLag} records ahead of {Consumer}")]
    private static partial void LogProducingPaced(ILogger logger, long count, string topic, int maxLag, string consumer);

    [LoggerMessage(EventId = 293, Level = LogLevel.Information, Message = "Producing {Count} examples to {Topic}, at most {MaxLag} records and {MaxLagBytes} bytes of records ahead of {Consumer}")]
    private static partial void LogProducingPacedByBytes(ILogger logger, long count, string topic, int maxLag, long maxLagBytes, string consumer);

    [LoggerMessage(EventId = 222, Level = LogLevel.Information, Message = "Producing {Count} examples to {Topic} without pacing")]
    private static partial void LogProducing(ILogger logger, long count, string topic);

    [LoggerMessage(EventId = 221, Level = LogLevel.Information, Message = "Produced {Count} examples to {Topic}")]
    private static partial void LogProduced(ILogger logger, long count, string topic);
}

/// <summary>
/// Sizes of the records produced since the start that the consumer position has not passed, oldest first.
/// </summary>
internal sealed class UnconsumedRecords
{
    private readonly Queue<int> sizes = new();
    private long passed;

    /// <summary>Total size in bytes of the keys and values of the records not passed yet.</summary>
    public long Bytes { get; private set; }

    public void Add(int bytes)
    {
        sizes.Enqueue(bytes);
        Bytes += bytes;
    }

    /// <summary>Drops the oldest records, up to <paramref name="consumed"/> records passed since the start.</summary>
    /// <remarks>
    /// NOTE: with several partitions the committed offsets do not pass records in the order they were produced, so
    /// <see cref="Bytes"/> is then an estimate, exact only for records of equal size.
    /// </remarks>
    public void Release(long consumed)
    {
        while (passed < consumed && sizes.Count > 0)
        {
            Bytes -= sizes.Dequeue();
            passed++;
        }
    }
}

/// <summary>The format of the records that <see cref="ExampleProducer"/> writes.</summary>
public enum RecordFormat
{
    /// <summary><c>{"id","task","label","features"}</c>, which any producer can write.</summary>
    Json,

    /// <summary><see cref="BinaryExampleRecord"/>: one byte per pixel, about a third of the JSON size for Fashion-MNIST images.</summary>
    Binary,
}
