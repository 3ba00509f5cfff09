using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Tests.Promotion;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// File work that runs longer than max.poll.interval.ms, as on a slow or hung volume. The work is the golden set's read,
/// the live version's reload after a rejected candidate, the checkpoint write after it, the pause marker's read, and the
/// rollback's checkpoint load and the pause marker's write after training diverged. An injected wait delays the
/// first such access by twice the interval, and the learner must stay in its consumer group: no revocation, no record
/// read twice, and the round's offsets committed.
/// </summary>
[Collection(GoldenSetGaugeGroup.Name)]
public sealed class SlowFileWorkTests : IDisposable
{
    private const string Topic = "slow-file-work";

    private static readonly TimeSpan AccessDelay = 2 * GroupMembership.MaxPollInterval;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-slow-file-work-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task SlowGoldenSetReadKeepsGroup()
    {
        await Task.Run(async () =>
        {
            const string groupId = "slow-golden-set-read";
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers, groupId);

            // The gate's measurements on 100 examples are noisy, and the examples of a rejected round are counted as
            // discarded, not trained, so the check of Status.Trained would fail.
            options.Promotion.Enabled = false;
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers, GroupMembership.ShortMaxPollInterval());
            await StartAsync(learner);
            int delayed = 0;
            learner.FaultHooks.BeforeGoldenSetRead = () => DelayFirstAccess(ref delayed);

            await RunTwoRoundsAsync(broker, learner);

            delayed.ShouldBe(1, "the golden set was not read");
            (learner.Status.Trained + learner.Status.HeldOut).ShouldBe(200, "a record was trained or held out twice");
            AssertStayedInGroup(broker, groupId, learner, loggers);
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task SlowLiveVersionReloadKeepsGroup()
    {
        await Task.Run(async () =>
        {
            const string groupId = "slow-live-version-reload";
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var loggers = new RecordingLoggerFactory();
            using var learner = RejectingLearner(broker, groupId, loggers);
            await StartAsync(learner);
            int delayed = 0;
            learner.FaultHooks.BeforeLiveVersionReload = () => DelayFirstAccess(ref delayed);

            await RunTwoRoundsAsync(broker, learner);

            delayed.ShouldBe(1, "the live version was not reloaded");
            learner.Status.Rejected.ShouldBe(2);
            AssertStayedInGroup(broker, groupId, learner, loggers);
        });
    }

    // The weights, optimizer and teacher files are serialized on the learner thread and written with the others.
    [Theory(Timeout = 120_000)]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SlowRejectedCheckpointKeepsGroup(bool delayModuleFiles)
    {
        await Task.Run(async () =>
        {
            const string groupId = "slow-rejected-checkpoint";
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            var loggers = new RecordingLoggerFactory();
            using var learner = RejectingLearner(broker, groupId, loggers);

            // The hook is set after the start, so the first checkpoint, written before the consumer exists, is not delayed.
            await StartAsync(learner);
            int delayed = 0;
            if (delayModuleFiles)
            {
                learner.FaultHooks.BeforeModuleFilesWrite = () => DelayFirstAccess(ref delayed);
            }
            else
            {
                learner.FaultHooks.BeforeCheckpointWrite = () => DelayFirstAccess(ref delayed);
            }

            await RunTwoRoundsAsync(broker, learner);

            delayed.ShouldBe(1, "no checkpoint was written after a rejected round");
            learner.Status.Rejected.ShouldBe(2);
            learner.Checkpoint.ShouldNotBeNull().Offsets.Single().Offset.ShouldBe(200);
            AssertStayedInGroup(broker, groupId, learner, loggers);
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task SlowPauseMarkerReadKeepsGroup()
    {
        await Task.Run(async () =>
        {
            const string groupId = "slow-pause-marker-read";
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers, groupId);
            options.Promotion.Enabled = false;
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers, GroupMembership.ShortMaxPollInterval());
            await StartAsync(learner);
            int delayed = 0;
            learner.FaultHooks.BeforePauseMarkerRead = () => DelayFirstAccess(ref delayed);

            await RunTwoRoundsAsync(broker, learner);

            delayed.ShouldBe(1, "the pause marker was not read");
            AssertStayedInGroup(broker, groupId, learner, loggers);
        });
    }

    // A poll that fails during file work ends the learner thread, whose caller then frees the buffers that the work uses
    // (a checkpoint's serialized weights), so the learner thread must wait for the work before it ends.
    [Fact(Timeout = 120_000)]
    public async Task FailedPollWaitsForFileWork()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers, "failed-poll-during-file-work");
            using var learner = new ContinualLearner(options, new RecordingLoggerFactory(), GroupMembership.ShortMaxPollInterval());
            await StartAsync(learner);
            int stalledReads = 0;
            int workEnded = 0;
            learner.FaultHooks.BeforePauseMarkerRead = () =>
            {
                if (Interlocked.Increment(ref stalledReads) == 1)
                {
                    Thread.Sleep(TimeSpan.FromSeconds(1));
                    Volatile.Write(ref workEnded, 1);
                }
            };
            learner.FaultHooks.BeforePausedPoll = () =>
            {
                if (Volatile.Read(ref stalledReads) == 1 && Volatile.Read(ref workEnded) == 0)
                {
                    throw new KafkaException(new Error(ErrorCode.Local_Fatal, "injected fatal error", isFatal: true));
                }
            };

            await LearnerHarness.WaitUntilAsync(() => learner.HasStopped, "the failed poll did not end the learner thread");

            Volatile.Read(ref workEnded).ShouldBe(1, "the learner thread ended while its file work was still running");
            learner.Failure.ShouldBeOfType<KafkaException>();
        });
    }

    // A learning rate of 1e30 makes every loss after Adam's first update non-finite, so the learner rolls back, diverges
    // again and, past Learner:Checkpoint:MaxRollbacks, writes the pause marker. No round is published, so the offsets
    // are not committed, and the check is that the learner polls on in its group after the slow rollback or write.
    [Theory(Timeout = 120_000)]
    [InlineData("rollback load")]
    [InlineData("pause marker write")]
    public async Task SlowDivergenceFileWorkKeepsGroup(string delayedWork)
    {
        await Task.Run(async () =>
        {
            string groupId = "slow-" + delayedWork.Replace(' ', '-');
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers, groupId);
            options.Trainer.LearningRate = 1e30;
            options.Trainer.GradientClipNorm = 0;
            options.Checkpoint.MaxRollbacks = 1;
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers, GroupMembership.ShortMaxPollInterval());
            await StartAsync(learner);
            int delayed = 0;
            int markerReads = 0;
            if (delayedWork == "rollback load")
            {
                learner.FaultHooks.BeforeRollbackLoad = () => DelayFirstAccess(ref delayed);
            }
            else
            {
                learner.FaultHooks.BeforePauseMarkerWrite = () => DelayFirstAccess(ref delayed);
            }

            learner.FaultHooks.BeforePauseMarkerRead = () => Interlocked.Increment(ref markerReads);

            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 400), "only");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsDiverged, "training did not diverge");

            // Two seconds of the consumer loop, whose polls would serve the revocation of a learner dropped from its group.
            int readsAtDivergence = Volatile.Read(ref markerReads);
            await LearnerHarness.WaitUntilAsync(
                () => Volatile.Read(ref markerReads) >= readsAtDivergence + 4, "the learner did not read the pause marker after it diverged");

            delayed.ShouldBe(1, $"the {delayedWork} did not run");
            GroupMembership.AssertNeverLeftGroup(learner, loggers);
        });
    }

    // The gate rejects every candidate, so each round reloads the live version 1.
    private ContinualLearner RejectingLearner(EmbeddedKafkaBroker broker, string groupId, RecordingLoggerFactory loggers)
    {
        LearnerOptions options = Options(broker.BootstrapServers, groupId);
        RejectingGoldenSet.Apply(options, storeDirectory.Path);
        return new ContinualLearner(options, loggers, GroupMembership.ShortMaxPollInterval());
    }

    private static async Task StartAsync(ContinualLearner learner)
    {
        learner.Start();
        await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
    }

    // The first round is the slow one. The second shows that the learner reads on from where the first round ended.
    private static async Task RunTwoRoundsAsync(EmbeddedKafkaBroker broker, ContinualLearner learner)
    {
        LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "first");
        await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100, "the slow round did not end");
        LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(100, 100), "second");
        await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 200, "the round after the slow one did not end");
    }

    private static void DelayFirstAccess(ref int delayed)
    {
        if (Interlocked.Increment(ref delayed) == 1)
        {
            Thread.Sleep(AccessDelay);
        }
        else
        {
            Interlocked.Decrement(ref delayed);
        }
    }

    private static void AssertStayedInGroup(EmbeddedKafkaBroker broker, string groupId, ContinualLearner learner, RecordingLoggerFactory loggers) =>
        GroupMembership.AssertStayedInGroup(broker, Topic, groupId, learner, loggers, records: 200);

    private LearnerOptions Options(string bootstrapServers, string groupId) => LearnerHarness.Options(
        bootstrapServers, Topic, groupId, storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
}
