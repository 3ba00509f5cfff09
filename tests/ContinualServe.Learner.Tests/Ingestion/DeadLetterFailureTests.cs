using System.Text;
using Confluent.Kafka;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Ingestion;

/// <summary>
/// Dead letters that cannot be written: one that the dead-letter producer rejects before sending it, and ones still
/// undelivered when the producer closes. Each is logged and counted, and the learner goes on. A full producer queue is
/// waited out instead, for a bounded time.
/// </summary>
public sealed class DeadLetterFailureTests : IDisposable
{
    private const string Topic = "dead-letter-failure";

    // Over Learner:MaxRecordBytes (1 MiB) and over the dead-letter producer's message.max.bytes (1,000,000 bytes).
    private const int OversizedBytes = 1_100_000;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-dead-letter-failure-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task OversizedRecordDoesNotStopLearner()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            ProduceOversizedRecord(broker.BootstrapServers);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 20), "after");
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "dead-letter-failure", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            var loggers = new RecordingLoggerFactory();
            double failuresBefore = ContinualServeMetrics.DeadLetterFailures.Value;
            using var learner = new ContinualLearner(options, loggers);
            learner.Start();

            await LearnerHarness.WaitUntilAsync(
                () => learner.Failure is not null || learner.Status.RoundPosition == 21,
                "the learner neither stopped nor published a round after the oversized record");

            learner.Failure.ShouldBeNull("a dead letter that cannot be written must not stop the learner");
            learner.Status.IsRunning.ShouldBeTrue();
            learner.Status.Invalid.ShouldBe(1);
            (ContinualServeMetrics.DeadLetterFailures.Value - failuresBefore).ShouldBeGreaterThanOrEqualTo(1);
            loggers.Logger.Entries.ShouldContain(entry => entry.Level == LogLevel.Error
                && entry.Message.StartsWith($"Could not write dead letter for {Topic} ", StringComparison.Ordinal));
        });
    }

    [Fact(Timeout = 60_000)]
    public async Task UndeliveredAtDisposeIsLogged()
    {
        await Task.Run(() =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            broker.SetBrokerDown();
            var logger = new RecordingLogger();
            double failuresBefore = ContinualServeMetrics.DeadLetterFailures.Value;
            var source = new ConsumeResult<byte[]?, byte[]?>
            {
                TopicPartitionOffset = new TopicPartitionOffset(Topic, 0, 7),
                Message = new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes("k"), Value = Encoding.UTF8.GetBytes("{") },
            };

            using (var publisher = new DeadLetterPublisher(broker.BootstrapServers, Topic + ".dlq", logger))
            {
                publisher.Publish(source, "malformed JSON");
            }

            (ContinualServeMetrics.DeadLetterFailures.Value - failuresBefore).ShouldBeGreaterThanOrEqualTo(1);
            logger.Entries.ShouldContain(entry => entry.Level == LogLevel.Error
                && entry.Message.StartsWith($"1 dead letters on {Topic}.dlq were not delivered", StringComparison.Ordinal));
        });
    }

    // With the broker down, both dead letters stay undelivered. The count at close is the dead letters that got no
    // delivery report, and the reports of the purge at close are not counted a second time.
    // NOTE: Flush serves queued events itself, so librdkafka's queue length exceeded the dead letters only when an
    // event arrived as the flush timed out. This test passed with that count too, and it could not be forced here.
    [Fact(Timeout = 60_000)]
    public async Task UndeliveredCountIsExact()
    {
        await Task.Run(() =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            broker.SetBrokerDown();
            var logger = new RecordingLogger();
            double failuresBefore = ContinualServeMetrics.DeadLetterFailures.Value;
            using (var publisher = new DeadLetterPublisher(broker.BootstrapServers, Topic + ".dlq", logger))
            {
                publisher.Publish(Invalid(0), "malformed JSON");
                publisher.Publish(Invalid(1), "malformed JSON");
            }

            LogRecord undelivered = logger.Records.Single(record => record.EventId == 264);
            undelivered.Message.ShouldStartWith($"2 dead letters on {Topic}.dlq were not delivered");
            (ContinualServeMetrics.DeadLetterFailures.Value - failuresBefore).ShouldBe(2);
            logger.Records.ShouldNotContain(record => record.EventId == 210);
        });
    }

    // The flush at close times out at once, so the broker acknowledges the dead letter while the producer closes.
    // The dead letter was delivered, so error 264 must not report it. The embedded broker acknowledges within
    // milliseconds, far less than the 2 s wait before the close.
    [Fact(Timeout = 60_000)]
    public async Task LateDeliveryIsNotUndelivered()
    {
        await Task.Run(() =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var logger = new RecordingLogger();
            using (var publisher = new DeadLetterPublisher(broker.BootstrapServers, Topic + ".dlq", logger)
            {
                CloseFlushTimeout = TimeSpan.Zero,
                BeforeProducerClose = () => Thread.Sleep(TimeSpan.FromSeconds(2)),
            })
            {
                publisher.Publish(Invalid(3), "malformed JSON");
            }

            ReadDeadLetterOffsets(broker.BootstrapServers).ShouldBe([3L], "the dead letter must be in the dead-letter topic");
            logger.Records.ShouldNotContain(record => record.EventId == 264);
            logger.Records.ShouldNotContain(record => record.EventId == 210);
            logger.Records.ShouldNotContain(record => record.EventId == 269);
        });
    }

    // A queue of one message fills at the second dead letter. Dropping it would lose the record once its offset is
    // committed, so the publisher waits for room while the broker acknowledges.
    [Fact(Timeout = 60_000)]
    public async Task FullQueueWaitsForRoom()
    {
        await Task.Run(() =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var logger = new RecordingLogger();
            using (var publisher = new DeadLetterPublisher(broker.BootstrapServers, Topic + ".dlq", logger, OneMessageQueue()))
            {
                for (int offset = 0; offset < 20; offset++)
                {
                    publisher.Publish(Invalid(offset), "malformed JSON");
                }

                publisher.Flush(TimeSpan.FromSeconds(20));
            }

            logger.Entries.ShouldNotContain(entry => entry.Level >= LogLevel.Error);
        });
    }

    // With the broker down the queue never drains, so the publisher throws after its timeout, which stops the learner
    // before the record's offset is committed.
    [Fact(Timeout = 60_000)]
    public async Task QueueFullPastTimeoutThrows()
    {
        await Task.Run(() =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            broker.SetBrokerDown();
            var logger = new RecordingLogger();
            using var publisher = new DeadLetterPublisher(broker.BootstrapServers, Topic + ".dlq", logger, OneMessageQueue())
            {
                QueueFullTimeout = TimeSpan.FromSeconds(1),
            };
            publisher.Publish(Invalid(0), "malformed JSON");

            ProduceException<byte[]?, byte[]?> exception = Should.Throw<ProduceException<byte[]?, byte[]?>>(
                () => publisher.Publish(Invalid(1), "malformed JSON"));

            exception.Error.Code.ShouldBe(ErrorCode.Local_QueueFull);
        });
    }

    // Each oversized dead letter is rejected by the producer before sending. Error 210 is logged for the first, then
    // suppressed within the interval, and the next one after the interval gives the count since. The metric counts all.
    [Fact(Timeout = 60_000)]
    public async Task FailureLogIsRateLimited()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var logger = new RecordingLogger();
            double failuresBefore = ContinualServeMetrics.DeadLetterFailures.Value;
            var interval = TimeSpan.FromSeconds(2);
            using (var publisher = new DeadLetterPublisher(broker.BootstrapServers, Topic + ".dlq", logger) { FailureLogInterval = interval })
            {
                for (int offset = 0; offset < 5; offset++)
                {
                    publisher.Publish(Oversized(offset), "record too large");
                }

                FailureLogs(logger).Length.ShouldBe(1);
                FailureLogs(logger)[0].Message.ShouldContain("(1 failures since the last such message, 1 so far)");

                await Task.Delay(interval + TimeSpan.FromMilliseconds(200));
                publisher.Publish(Oversized(5), "record too large");
                FailureLogs(logger).Length.ShouldBe(2);
                FailureLogs(logger)[1].Message.ShouldContain("(5 failures since the last such message, 6 so far)");

                publisher.Publish(Oversized(6), "record too large");
                FailureLogs(logger).Length.ShouldBe(2);
            }

            (ContinualServeMetrics.DeadLetterFailures.Value - failuresBefore).ShouldBe(7);
            LogRecord trailing = logger.Records.Single(record => record.EventId == 269);
            trailing.Message.ShouldStartWith($"1 more dead letters for {Topic}.dlq could not be written");
        });
    }

    // Reads the source offsets that the dead letters on the dead-letter topic name, for at most 10 s.
    private static List<long> ReadDeadLetterOffsets(string bootstrapServers)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "dead-letter-reader",
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
        };
        using IConsumer<byte[]?, byte[]?> consumer = new ConsumerBuilder<byte[]?, byte[]?>(config).Build();
        consumer.Assign(new TopicPartitionOffset(Topic + ".dlq", 0, Offset.Beginning));
        var offsets = new List<long>();
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (offsets.Count == 0 && DateTime.UtcNow < deadline)
        {
            ConsumeResult<byte[]?, byte[]?>? result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result?.Message?.Headers is { } headers)
            {
                string offset = Encoding.UTF8.GetString(headers.GetLastBytes(DeadLetterPublisher.SourceOffsetHeader));
                offsets.Add(long.Parse(offset, System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return offsets;
    }

    private static LogRecord[] FailureLogs(RecordingLogger logger) => logger.Records.Where(record => record.EventId == 210).ToArray();

    private static ConsumeResult<byte[]?, byte[]?> Oversized(long offset) => new()
    {
        TopicPartitionOffset = new TopicPartitionOffset(Topic, 0, offset),
        Message = new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes("k"), Value = new byte[OversizedBytes] },
    };

    private static KafkaClientProperties OneMessageQueue() =>
        KafkaClientProperties.Load(null, [new KeyValuePair<string, string>("queue.buffering.max.messages", "1")]);

    private static ConsumeResult<byte[]?, byte[]?> Invalid(long offset) => new()
    {
        TopicPartitionOffset = new TopicPartitionOffset(Topic, 0, offset),
        Message = new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes("k"), Value = Encoding.UTF8.GetBytes("{") },
    };

    private static void ProduceOversizedRecord(string bootstrapServers)
    {
        var config = new ProducerConfig { BootstrapServers = bootstrapServers, MessageMaxBytes = 2 * OversizedBytes };
        using IProducer<byte[], byte[]> producer = new ProducerBuilder<byte[], byte[]>(config).Build();
        byte[] value = Encoding.UTF8.GetBytes("{\"id\":\"oversized\",\"padding\":\"" + new string('x', OversizedBytes) + "\"}");
        producer.Produce(Topic, new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes("oversized"), Value = value });
        producer.Flush(TimeSpan.FromSeconds(20)).ShouldBe(0, "the oversized record was not delivered to the embedded broker");
    }
}
