using ContinualServe.Learner.Data;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Ingestion;

public sealed class ExampleProducerTests
{
    [Fact(Timeout = 30_000)]
    public async Task StalledConsumerIsReportedWhileWaiting()
    {
        await Task.Run(async () =>
        {
            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic("paced", partitionCount: 1);
            var logger = new RecordingLogger();
            var producer = new ExampleProducer(broker.BootstrapServers, "paced", logger)
            {
                ConsumerName = "consumer group 'learners'",
                MaxLag = 10,
                MaxTasks = 1,
                WaitReportInterval = TimeSpan.FromMilliseconds(200),
            };
            using var cancellation = new CancellationTokenSource(TimeSpan.FromSeconds(2));

            // The consumer never moves, so the producer stops after 10 records and waits until cancelled.
            await Should.ThrowAsync<OperationCanceledException>(
                () => producer.ProduceAsync(TestData.TrainingSet, () => 0, null, cancellation.Token));

            string[] waiting = logger.Messages.Where(message => message.StartsWith("Waiting", StringComparison.Ordinal)).ToArray();
            waiting.Length.ShouldBeGreaterThanOrEqualTo(2);
            waiting[0].ShouldContain("for consumer group 'learners': it is at offset 0");
            waiting[0].ShouldContain("Is the learner running and not paused, and is the group name right?");
        });
    }

    [Theory(Timeout = 30_000)]
    [InlineData(RecordFormat.Json)]
    [InlineData(RecordFormat.Binary)]
    public async Task ByteBoundStopsBeforeRecordBound(RecordFormat format)
    {
        await Task.Run(async () =>
        {
            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic("paced-bytes", partitionCount: 1);
            var logger = new RecordingLogger();

            // Ids of equal length and equal features give records of equal size.
            LabeledExample[] examples = Enumerable.Range(0, 100)
                .Select(index => new LabeledExample("b-" + index.ToString("D3", System.Globalization.CultureInfo.InvariantCulture), 1, 0, Enumerable.Repeat(0.123456f, 1000).ToArray()))
                .ToArray();
            int recordBytes = "b-000".Length + ExampleProducer.Encode(format, examples[0]).Length;
            var producer = new ExampleProducer(broker.BootstrapServers, "paced-bytes", logger)
            {
                MaxLag = 50,
                MaxLagBytes = 10L * recordBytes,
                Format = format,
                WaitReportInterval = TimeSpan.FromMilliseconds(200),
            };
            using var cancellation = new CancellationTokenSource(TimeSpan.FromSeconds(2));

            // The consumer never moves, so the producer sends one record past 10 records' bytes and waits until cancelled.
            await Should.ThrowAsync<OperationCanceledException>(
                () => producer.ProduceAsync(examples, examples.Length, () => 0, null, cancellation.Token));

            string[] waiting = logger.Messages.Where(message => message.StartsWith("Waiting", StringComparison.Ordinal)).ToArray();
            waiting.ShouldNotBeEmpty();
            waiting[0].ShouldContain($"{11L * recordBytes} bytes of records behind");
            waiting[0].ShouldContain($"resumes at {10L * recordBytes} bytes behind");
            logger.Messages.ShouldContain(message => message.Contains("at most 50 records and " + (10L * recordBytes) + " bytes of records ahead", StringComparison.Ordinal));
        });
    }

    [Fact(Timeout = 30_000)]
    public async Task FullQueueWaitsForBroker()
    {
        await Task.Run(async () =>
        {
            using var broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic("queue-full", partitionCount: 1);
            var producer = new ExampleProducer(broker.BootstrapServers, "queue-full", new RecordingLogger());

            // librdkafka queues at most 100,000 undelivered records by default (queue.buffering.max.messages), so
            // with the broker down the producer fills its queue and must wait there instead of failing.
            const int Count = 110_000;
            IEnumerable<LabeledExample> examples = Enumerable.Range(0, Count).Select(index => new LabeledExample("q-" + index, 1, 0, [index % 256]));
            var queued = new QueuedCount();
            broker.SetBrokerDown();
            Task<long> producing = producer.ProduceAsync(examples, Count, null, queued, CancellationToken.None);
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (queued.Value < 100_000 && !producing.IsCompleted && waited.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(50);
            }

            queued.Value.ShouldBe(100_000, "records queued while the broker is down");
            await Task.Delay(500);
            producing.IsCompleted.ShouldBeFalse(producing.Exception?.InnerException?.Message ?? "the producer returned while the broker was down");
            broker.SetBrokerUp();

            (await producing).ShouldBe(Count);
        });
    }

    // Progress<T> posts to the synchronization context, so the last value is recorded directly.
    private sealed class QueuedCount : IProgress<long>
    {
        private long value;

        public long Value => Interlocked.Read(ref value);

        public void Report(long value) => Interlocked.Exchange(ref this.value, value);
    }
}
