using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// A round write that the disk blocks, as a hung NFS fsync would. An injected wait keeps the write running well past a short
/// Learner:RoundWriteStallThreshold, and the learner must warn once and report itself not ready until the write ends.
/// </summary>
public sealed class StalledRoundWriteTests : IDisposable
{
    private const string Topic = "stalled-write";
    private const int StalledEventId = 267;
    private const int RecoveredEventId = 268;
    private const int AssignedEventId = 271;
    private const int RevokedEventId = 272;
    private const int ConsumeErrorEventId = 208;
    private const int CommitFailedEventId = 245;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-stalled-write-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task StalledWriteWarnsOnceAndUnready()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "stalled-write", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            options.RoundWriteStallThreshold = TimeSpan.FromMilliseconds(300);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            using var releaseWrite = new ManualResetEventSlim();
            learner.FaultHooks.BeforeRoundWrite = () => releaseWrite.Wait(TimeSpan.FromSeconds(30));
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "only");

            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsRoundWriteStalled, "the held write was not reported as stalled");
            learner.IsReady.ShouldBeFalse();

            // Several thresholds pass while the write is still held, and the warning must not repeat.
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            LogRecord warning = loggers.Logger.Records.Single(record => record.EventId == StalledEventId);
            warning.Message.ShouldContain(storeDirectory.Path);
            warning.Message.ShouldContain("Learner:RoundWriteStallThreshold");
            learner.Status.RoundPosition.ShouldBe(0, "the held round must not be committed");

            releaseWrite.Set();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100, "the round was not published after the write ended");
            learner.Status.IsRoundWriteStalled.ShouldBeFalse();
            learner.IsReady.ShouldBeTrue();
            loggers.Logger.Records.Count(record => record.EventId == RecoveredEventId).ShouldBe(1);
            loggers.Logger.Records.Count(record => record.EventId == StalledEventId).ShouldBe(1);
        });
    }

    // The optimizer and teacher files of the round's checkpoint are the write task's first step, in the checkpoint
    // directory, and a hung volume blocks them as well, so they count as part of the round write. The learner thread
    // copies them into memory and goes on, so it stays in its group while the write is held past max.poll.interval.ms.
    [Fact(Timeout = 120_000)]
    public async Task StalledCheckpointPrepareUnready()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "stalled-prepare", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            options.RoundWriteStallThreshold = TimeSpan.FromMilliseconds(300);
            string checkpointDirectory = options.Checkpoint.ResolveDirectory(options.StoreDirectory);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers, GroupMembership.ShortMaxPollInterval());
            using var releasePrepare = new ManualResetEventSlim();
            learner.FaultHooks.BeforeCheckpointPrepare = () => releasePrepare.Wait(TimeSpan.FromSeconds(30));
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "only");

            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsRoundWriteStalled, "the held checkpoint files were not reported as stalled");
            learner.IsReady.ShouldBeFalse();
            LogRecord warning = loggers.Logger.Records.Single(record => record.EventId == StalledEventId);
            warning.Message.ShouldContain(checkpointDirectory);

            // The next round waits for the held write, twice as long as max.poll.interval.ms.
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(100, 100), "second");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Consumed == 200, "the second batch was not consumed");
            await Task.Delay(2 * GroupMembership.MaxPollInterval);
            releasePrepare.Set();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 200, "the rounds were not published after the write ended");
            learner.Status.IsRoundWriteStalled.ShouldBeFalse();
            learner.IsReady.ShouldBeTrue();
            loggers.Logger.Records.Count(record => record.EventId == RecoveredEventId).ShouldBe(1);
            loggers.Logger.Records.Count(record => record.EventId == StalledEventId).ShouldBe(1);
            GroupMembership.AssertNeverLeftGroup(learner, loggers);
        });
    }

    // Optimizer state too large to copy is written by the learner thread before the write task starts, and its stall is
    // reported as the round write's as well.
    [Fact(Timeout = 120_000)]
    public async Task StalledLargeOptimizerWriteUnready()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "stalled-large-optimizer", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            options.RoundWriteStallThreshold = TimeSpan.FromMilliseconds(300);
            string checkpointDirectory = options.Checkpoint.ResolveDirectory(options.StoreDirectory);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers) { MaxCopiedOptimizerBytes = 0 };
            using var releasePrepare = new ManualResetEventSlim();
            int learnerThreadPrepares = 0;
            learner.FaultHooks.BeforeCheckpointPrepare = () =>
            {
                if (Thread.CurrentThread.Name == "continualserve-learner")
                {
                    Interlocked.Increment(ref learnerThreadPrepares);
                }

                releasePrepare.Wait(TimeSpan.FromSeconds(30));
            };
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "only");

            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsRoundWriteStalled, "the held optimizer write was not reported as stalled");
            learner.IsReady.ShouldBeFalse();
            loggers.Logger.Records.Single(record => record.EventId == StalledEventId).Message.ShouldContain(checkpointDirectory);

            releasePrepare.Set();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100, "the round was not published after the write ended");
            learner.IsReady.ShouldBeTrue();
            Volatile.Read(ref learnerThreadPrepares).ShouldBe(1, "the learner thread did not write the optimizer state itself");
        });
    }

    // With Learner:Checkpoint:WriteTrainingLog, a round flushes the training log on the learner thread before the rest of
    // its checkpoint, and a hung volume blocks that flush as well, so it counts as part of the round write.
    [Fact(Timeout = 120_000)]
    public async Task StalledTrainingLogFlushUnready()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "stalled-training-log", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            options.RoundWriteStallThreshold = TimeSpan.FromMilliseconds(300);
            options.Checkpoint.WriteTrainingLog = true;
            string checkpointDirectory = options.Checkpoint.ResolveDirectory(options.StoreDirectory);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            using var holdFlushes = new ManualResetEventSlim();
            using var releaseFlush = new ManualResetEventSlim();
            learner.FaultHooks.BeforeTrainingLogFlush = () =>
            {
                if (holdFlushes.IsSet)
                {
                    releaseFlush.Wait(TimeSpan.FromSeconds(30));
                }
            };
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            holdFlushes.Set();
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "only");

            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsRoundWriteStalled, "the held training log flush was not reported as stalled");
            learner.IsReady.ShouldBeFalse();
            LogRecord warning = loggers.Logger.Records.Single(record => record.EventId == StalledEventId);
            warning.Message.ShouldContain(checkpointDirectory);

            holdFlushes.Reset();
            releaseFlush.Set();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100, "the round was not published after the flush ended");
            learner.Status.IsRoundWriteStalled.ShouldBeFalse();
            learner.IsReady.ShouldBeTrue();
            loggers.Logger.Records.Count(record => record.EventId == RecoveredEventId).ShouldBe(1);
        });
    }

    // The learner thread waits for a stalled write when the next round starts. It keeps polling meanwhile, so a stall
    // longer than max.poll.interval.ms does not make librdkafka leave the group, and nothing is revoked or assigned again.
    [Fact(Timeout = 120_000)]
    public async Task StalledWaitKeepsGroupMembership()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "stalled-membership", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            options.RoundWriteStallThreshold = TimeSpan.FromMilliseconds(300);

            // librdkafka requires max.poll.interval.ms to be at least session.timeout.ms, which the harness sets to 3 s.
            KafkaClientProperties properties = KafkaClientProperties.Load(null, [new("max.poll.interval.ms", "3000")]);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers, properties);
            using var releaseWrite = new ManualResetEventSlim();
            HoldFirstRoundWrite(learner, releaseWrite);
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "first");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsRoundWriteStalled, "the held write was not reported as stalled");

            // The idle round after the second batch waits for the held write, about twice as long as max.poll.interval.ms.
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(100, 100), "second");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Consumed == 200, "the second batch was not consumed");
            await Task.Delay(TimeSpan.FromSeconds(6.5));
            releaseWrite.Set();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 200, "the second round was not published after the write ended");

            IReadOnlyList<LogRecord> records = loggers.Logger.Records;
            records.Count(record => record.EventId == AssignedEventId).ShouldBe(1, "the partitions were assigned again");
            records.ShouldNotContain(record => record.EventId == RevokedEventId);
            records.ShouldNotContain(record => record.EventId == ConsumeErrorEventId);
            records.ShouldNotContain(record => record.EventId == CommitFailedEventId);
            learner.Status.Consumed.ShouldBe(200);
            CommittedOffset(broker.BootstrapServers, "stalled-membership").ShouldBe(200);
        });
    }

    // A rebalance while the learner thread waits for a stalled write runs the learner's revoke and assign handlers
    // inside the wait's polls. The learner reads on from its handled position afterwards, without losing or repeating a record.
    [Fact(Timeout = 120_000)]
    public async Task RebalanceDuringStalledWait()
    {
        await Task.Run(async () =>
        {
            const string groupId = "stalled-rebalance";
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, groupId, storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            options.RoundWriteStallThreshold = TimeSpan.FromMilliseconds(300);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            using var releaseWrite = new ManualResetEventSlim();
            HoldFirstRoundWrite(learner, releaseWrite);
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "first");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsRoundWriteStalled, "the held write was not reported as stalled");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(100, 100), "second");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Consumed == 200, "the second batch was not consumed");

            // The idle round starts 500 ms after the last record and then waits for the held write.
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            int assignedBefore = Count(loggers, AssignedEventId);
            using (IConsumer<Ignore, Ignore> other = new ConsumerBuilder<Ignore, Ignore>(KafkaDefaults.CreateConsumerConfig(broker.BootstrapServers, groupId)).Build())
            {
                other.Subscribe(Topic);
                DateTime deadline = DateTime.UtcNow + LearnerHarness.WaitLimit;
                while (Count(loggers, AssignedEventId) == assignedBefore)
                {
                    DateTime.UtcNow.ShouldBeLessThan(deadline, "the learner was not reassigned when another member joined");
                    other.Consume(TimeSpan.FromMilliseconds(100));
                }

                other.Close();
            }

            await LearnerHarness.WaitUntilAsync(
                () => Count(loggers, AssignedEventId) >= assignedBefore + 2 && LastAssignment(loggers).Contains(Topic, StringComparison.Ordinal),
                "the learner did not get its partition back after the other member left");
            learner.Status.RoundPosition.ShouldBe(0, "the write was still held during the rebalances");
            Count(loggers, RevokedEventId).ShouldBeGreaterThanOrEqualTo(1);

            releaseWrite.Set();
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(200, 100), "third");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 300, "the third batch was not published");
            learner.Status.Consumed.ShouldBe(300);
            learner.Failure.ShouldBeNull();
        });
    }

    // The first round write blocks until the test releases it, for at most 30 s; later writes run at once.
    private static void HoldFirstRoundWrite(ContinualLearner learner, ManualResetEventSlim release)
    {
        int writes = 0;
        learner.FaultHooks.BeforeRoundWrite = () =>
        {
            if (Interlocked.Increment(ref writes) == 1)
            {
                release.Wait(TimeSpan.FromSeconds(30));
            }
        };
    }

    private static int Count(RecordingLoggerFactory loggers, int eventId) =>
        loggers.Logger.Records.Count(record => record.EventId == eventId);

    private static string LastAssignment(RecordingLoggerFactory loggers) =>
        loggers.Logger.Records.Last(record => record.EventId == AssignedEventId).Message;

    // Reads the group's committed offset of partition 0 without joining the group.
    private static long CommittedOffset(string bootstrapServers, string groupId)
    {
        using IConsumer<Ignore, Ignore> reader = new ConsumerBuilder<Ignore, Ignore>(KafkaDefaults.CreateConsumerConfig(bootstrapServers, groupId)).Build();
        List<TopicPartitionOffset> committed = reader.Committed([new TopicPartition(Topic, new Partition(0))], TimeSpan.FromSeconds(10));
        return committed.Single().Offset.Value;
    }
}
