using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Confluent.Kafka;
using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// A learner whose checkpoint comes from a topic with more records than the topic it now reads: the embedded broker
/// keeps nothing on disk, so a second broker plays a topic that was deleted and created again.
/// </summary>
public sealed class RecreatedTopicTests : IDisposable
{
    private const string Topic = "recreated-examples";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-recreated-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task PositionPastEndIsReported()
    {
        await Task.Run(async () =>
        {
            using (EmbeddedKafkaBroker first = LearnerHarness.StartBroker(Topic))
            {
                LearnerHarness.Produce(first.BootstrapServers, Topic, Enumerable.Range(0, 300), "first");
                using var learner = new ContinualLearner(Options(first.BootstrapServers), new RecordingLoggerFactory(new RecordingLogger()));
                learner.Start();
                await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 300, "the first learner did not finish the first topic");
                learner.Stop(TimeSpan.FromSeconds(10));
            }

            using EmbeddedKafkaBroker second = LearnerHarness.StartBroker(Topic);
            LearnerHarness.Produce(second.BootstrapServers, Topic, Enumerable.Range(300, 100), "second");
            var logger = new RecordingLogger();
            using var restarted = new ContinualLearner(Options(second.BootstrapServers), new RecordingLoggerFactory(logger));
            restarted.Start();
            await LearnerHarness.WaitUntilAsync(() => restarted.Status.RoundPosition == 100, "the restarted learner did not read the new topic");
            restarted.Stop(TimeSpan.FromSeconds(10));

            logger.Entries.ShouldContain(
                entry => entry.Level == LogLevel.Error && entry.Message.Contains("position 300 on", StringComparison.Ordinal)
                    && entry.Message.Contains("is past the partition's end (100)", StringComparison.Ordinal),
                "a checkpoint position past the topic's end must be reported, not skipped silently");
            restarted.Status.Lost.ShouldBe(0);
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task LongerTopicStopsUntilReset()
    {
        await Task.Run(async () =>
        {
            using (EmbeddedKafkaBroker first = LearnerHarness.StartBroker(Topic))
            {
                await TrainAsync(first.BootstrapServers, 0, 50, "first");
            }

            using EmbeddedKafkaBroker second = LearnerHarness.StartBroker(Topic);
            LearnerHarness.Produce(second.BootstrapServers, Topic, Enumerable.Range(0, 120), "second");
            var logger = new RecordingLogger();
            using (var stopped = new ContinualLearner(Options(second.BootstrapServers), new RecordingLoggerFactory(logger)))
            {
                IncompatibleStateException error = Should.Throw<IncompatibleStateException>(() => stopped.Start());
                error.Message.ShouldContain("resumes at offset 50 after the record with offset 49");
                error.Message.ShouldContain("Learner:OnTopicMismatch=ResetToEarliest");
            }

            LogRecord mismatch = logger.Records.Where(record => record.EventId == 287).ShouldHaveSingleItem();
            mismatch.Level.ShouldBe(LogLevel.Error);
            mismatch.Message.ShouldContain("resumes at offset 50");

            var resetLogger = new RecordingLogger();
            LearnerOptions resetOptions = Options(second.BootstrapServers);
            resetOptions.OnTopicMismatch = TopicMismatchAction.ResetToEarliest;
            using var reset = new ContinualLearner(resetOptions, new RecordingLoggerFactory(resetLogger));
            reset.Start();
            await LearnerHarness.WaitUntilAsync(() => reset.Status.RoundPosition == 120, "the reset learner did not read the new topic to its end");
            reset.Stop(TimeSpan.FromSeconds(10));

            reset.Status.Consumed.ShouldBe(120, "the reset learner must read the new topic from offset 0");
            reset.Status.Lost.ShouldBe(0);
            resetLogger.Records.Count(record => record.EventId == 288 && record.Level == LogLevel.Warning).ShouldBe(1);
            resetLogger.Records.ShouldNotContain(record => record.EventId == 287);
            reset.Checkpoint!.LastRecords!.ShouldContain(identity => identity.Offset == 119);
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task ResetOffsetSurvivesRollback()
    {
        await Task.Run(async () =>
        {
            using (EmbeddedKafkaBroker first = LearnerHarness.StartBroker(Topic))
            {
                await TrainAsync(first.BootstrapServers, 0, 50, "first");
            }

            using EmbeddedKafkaBroker second = LearnerHarness.StartBroker(Topic);
            LearnerHarness.Produce(second.BootstrapServers, Topic, Enumerable.Range(0, 120), "second");

            // A learning rate of 1e30 makes the losses after Adam's first update non-finite, so the learner rolls back to
            // the checkpoint read at start before any round writes a newer one.
            LearnerOptions options = Options(second.BootstrapServers);
            options.OnTopicMismatch = TopicMismatchAction.ResetToEarliest;
            options.Trainer.LearningRate = 1e30;
            options.Trainer.BatchSize = 8;
            options.Checkpoint.MaxConsecutiveNonFiniteSteps = 1;
            using var learner = new ContinualLearner(options, new RecordingLoggerFactory(new RecordingLogger()));
            learner.Start();
            learner.Checkpoint!.Offsets.ShouldHaveSingleItem().Offset.ShouldBe(0);
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Rollbacks >= 1, "training did not roll back");
            learner.Stop(TimeSpan.FromSeconds(10));

            learner.Checkpoint!.Offsets.ShouldHaveSingleItem().Offset.ShouldBe(0, "a rollback must not return to the old topic's offset 50");
            learner.Checkpoint.LastRecords.ShouldNotBeNull().ShouldBeEmpty();
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task SameTopicResumesWithoutAlarm()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerCheckpoint written = await TrainAsync(broker.BootstrapServers, 0, 50, "same");
            RecordIdentity last = written.LastRecords!.ShouldHaveSingleItem();
            last.Offset.ShouldBe(49);
            last.KeySha256.ShouldBe(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(TestData.ExampleId("same", 49)))));
            last.TimestampType.ShouldBe(nameof(TimestampType.CreateTime));

            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(50, 30), "same");
            var logger = new RecordingLogger();
            using var restarted = new ContinualLearner(Options(broker.BootstrapServers), new RecordingLoggerFactory(logger));
            restarted.Start();
            await LearnerHarness.WaitUntilAsync(() => restarted.Status.RoundPosition == 80, "the restarted learner did not resume");
            restarted.Stop(TimeSpan.FromSeconds(10));

            restarted.Status.Consumed.ShouldBe(30, "the restarted learner must resume at the checkpoint's offset");
            logger.Records.ShouldNotContain(record => record.EventId >= 287 && record.EventId <= 289);
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task RecordDeletedByRetentionIsNotChecked()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            await TrainAsync(broker.BootstrapServers, 0, 50, "retained");

            // About 8 MiB: the embedded broker keeps about 5 MiB per partition and deletes the oldest records beyond it.
            using (IProducer<byte[], byte[]> producer = new ProducerBuilder<byte[], byte[]>(KafkaDefaults.CreateProducerConfig(broker.BootstrapServers)).Build())
            {
                for (int index = 0; index < 80; index++)
                {
                    producer.Produce(Topic, new Message<byte[], byte[]> { Key = [(byte)index], Value = new byte[100_000] });
                }

                producer.Flush(TimeSpan.FromSeconds(20));
            }

            var logger = new RecordingLogger();
            using var restarted = new ContinualLearner(Options(broker.BootstrapServers), new RecordingLoggerFactory(logger));
            restarted.Start();
            restarted.Stop(TimeSpan.FromSeconds(10));

            LogRecord notChecked = logger.Records.Where(record => record.EventId == 289).ShouldHaveSingleItem();
            notChecked.Level.ShouldBe(LogLevel.Information);
            notChecked.Message.ShouldContain("retention deleted the record at offset 49");
            logger.Records.ShouldNotContain(record => record.EventId == 287 || record.EventId == 288);
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task CheckpointWithoutIdentitiesResumes()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            await TrainAsync(broker.BootstrapServers, 0, 50, "old");

            // A checkpoint written before record identities were saved has no lastRecords field.
            string metadataPath = Directory.EnumerateFiles(storeDirectory.Path, LearnerCheckpoint.MetadataFileName, SearchOption.AllDirectories).Max()!;
            JsonObject metadata = JsonNode.Parse(File.ReadAllText(metadataPath))!.AsObject();
            metadata.Remove("lastRecords").ShouldBeTrue();
            File.WriteAllText(metadataPath, metadata.ToJsonString());

            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(50, 10), "old");
            var logger = new RecordingLogger();
            using var restarted = new ContinualLearner(Options(broker.BootstrapServers), new RecordingLoggerFactory(logger));
            restarted.Start();
            await LearnerHarness.WaitUntilAsync(() => restarted.Status.RoundPosition == 60, "the restarted learner did not resume");
            restarted.Stop(TimeSpan.FromSeconds(10));

            restarted.Status.Consumed.ShouldBe(10);
            LogRecord notChecked = logger.Records.Where(record => record.EventId == 289).ShouldHaveSingleItem();
            notChecked.Level.ShouldBe(LogLevel.Information);
            notChecked.Message.ShouldContain("written before learner checkpoints recorded the record before each offset");
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task UnreachableBrokerResumesUnchecked()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            await TrainAsync(broker.BootstrapServers, 0, 50, "down");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(50, 10), "down");

            broker.SetBrokerDown();
            var logger = new RecordingLogger();
            using var restarted = new ContinualLearner(Options(broker.BootstrapServers), new RecordingLoggerFactory(logger))
            {
                TopicCheckTimeout = TimeSpan.FromSeconds(2),
            };
            var started = System.Diagnostics.Stopwatch.StartNew();
            restarted.Start();
            started.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(10), "the check must give up within its timeout");
            LogRecord notChecked = logger.Records.Where(record => record.EventId == 289).ShouldHaveSingleItem();
            notChecked.Level.ShouldBe(LogLevel.Warning);

            broker.SetBrokerUp();
            await LearnerHarness.WaitUntilAsync(() => restarted.Status.RoundPosition == 60, "the learner did not resume after the broker came back");
            restarted.Stop(TimeSpan.FromSeconds(10));
            restarted.Status.Consumed.ShouldBe(10);
        });
    }

    /// <summary>Produces examples <paramref name="from"/> to <paramref name="from"/> + <paramref name="count"/> - 1, trains them and returns the last checkpoint.</summary>
    private async Task<LearnerCheckpoint> TrainAsync(string bootstrapServers, int from, int count, string prefix)
    {
        LearnerHarness.Produce(bootstrapServers, Topic, Enumerable.Range(from, count), prefix);
        using var learner = new ContinualLearner(Options(bootstrapServers), new RecordingLoggerFactory(new RecordingLogger()));
        learner.Start();
        await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == from + count, "the first learner did not train the first topic");
        learner.Stop(TimeSpan.FromSeconds(10));
        return learner.Checkpoint!;
    }

    private LearnerOptions Options(string bootstrapServers) => LearnerHarness.Options(
        bootstrapServers, Topic, "recreated-test", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
}
