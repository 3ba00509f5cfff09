using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Tests.Promotion;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// Reads on the learner thread that the volume blocks, as a hung NFS server would: the golden set's at a round, the
/// live version's after a rejected candidate, and the checkpoint's of a rollback. An injected wait keeps each read
/// running past a short Learner:RoundWriteStallThreshold, and the learner must warn once, naming the operation and the
/// path, and report itself not ready until the read returns.
/// </summary>
public sealed class StalledFileReadTests : IDisposable
{
    private const string Topic = "stalled-read";
    private const int StalledEventId = 276;
    private const int RecoveredEventId = 277;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-stalled-read-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task StalledGoldenSetReadUnready()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers, "stalled-golden-set");
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            using var releaseRead = new ManualResetEventSlim();
            learner.FaultHooks.BeforeGoldenSetRead = () => releaseRead.Wait(TimeSpan.FromSeconds(30));
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "only");

            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsFileReadStalled, "the held golden set read was not reported as stalled");
            learner.IsReady.ShouldBeFalse();

            // Several thresholds pass while the read is still held, and the warning must not repeat.
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            LogRecord warning = loggers.Logger.Records.Single(record => record.EventId == StalledEventId);
            warning.Level.ShouldBe(LogLevel.Warning);
            warning.Message.ShouldContain("golden set read");
            warning.Message.ShouldContain(Path.Combine(storeDirectory.Path, GoldenSet.FileName));
            warning.Message.ShouldContain("Learner:RoundWriteStallThreshold");
            learner.Status.RoundPosition.ShouldBe(0, "the round under review must not be published");

            releaseRead.Set();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100, "the round was not published after the read returned");
            learner.Status.IsFileReadStalled.ShouldBeFalse();
            learner.IsReady.ShouldBeTrue();
            loggers.Logger.Records.Count(record => record.EventId == StalledEventId).ShouldBe(1);
            LogRecord recovery = loggers.Logger.Records.Single(record => record.EventId == RecoveredEventId);
            recovery.Message.ShouldContain("golden set read");
        });
    }

    // The gate rejects every candidate, so the first round reloads the live version 1.
    [Fact(Timeout = 120_000)]
    public async Task StalledLiveVersionReloadUnready()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers, "stalled-reload");
            RejectingGoldenSet.Apply(options, storeDirectory.Path);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            using var releaseReload = new ManualResetEventSlim();
            learner.FaultHooks.BeforeLiveVersionReload = () => releaseReload.Wait(TimeSpan.FromSeconds(30));
            learner.Start();
            string liveWeights = Path.Combine(learner.Store.VersionDirectory(1), ModelStore.WeightsFileName);
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "only");

            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsFileReadStalled, "the held reload of the live version was not reported as stalled");
            learner.IsReady.ShouldBeFalse();
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            LogRecord warning = loggers.Logger.Records.Single(record => record.EventId == StalledEventId);
            warning.Message.ShouldContain("reload of the live version after a rejected candidate");
            warning.Message.ShouldContain(liveWeights);
            learner.Status.Rejected.ShouldBe(0, "the rejection is counted after the reload");

            releaseReload.Set();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Rejected == 1, "the rejected candidate was not discarded after the reload returned");
            learner.Status.IsFileReadStalled.ShouldBeFalse();
            learner.IsReady.ShouldBeTrue();
            learner.Status.LatestVersion.ShouldBe(1);
            loggers.Logger.Records.Count(record => record.EventId == StalledEventId).ShouldBe(1);
            loggers.Logger.Records.Single(record => record.EventId == RecoveredEventId).Message.ShouldContain(liveWeights);
        });
    }

    // A learning rate of 1e30 makes every loss after Adam's first update non-finite, so the learner rolls back after
    // Learner:Checkpoint:MaxConsecutiveNonFiniteSteps steps. Only the first rollback's load is held.
    [Fact(Timeout = 120_000)]
    public async Task StalledRollbackLoadUnready()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers, "stalled-rollback");
            options.Trainer.LearningRate = 1e30;
            options.Trainer.GradientClipNorm = 0;
            string checkpointDirectory = options.Checkpoint.ResolveDirectory(options.StoreDirectory);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            using var releaseLoad = new ManualResetEventSlim();
            int loads = 0;
            learner.FaultHooks.BeforeRollbackLoad = () =>
            {
                if (Interlocked.Increment(ref loads) == 1)
                {
                    releaseLoad.Wait(TimeSpan.FromSeconds(30));
                }
            };
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 400), "only");

            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsFileReadStalled, "the held checkpoint load of the rollback was not reported as stalled");
            learner.IsReady.ShouldBeFalse();
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            LogRecord warning = loggers.Logger.Records.Single(record => record.EventId == StalledEventId);
            warning.Message.ShouldContain("checkpoint load of a rollback");
            warning.Message.ShouldContain(checkpointDirectory);
            learner.Status.Rollbacks.ShouldBe(0, "the rollback is counted after the load");

            releaseLoad.Set();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Rollbacks >= 1, "the rollback did not finish after the load returned");
            learner.Status.IsFileReadStalled.ShouldBeFalse();
            learner.Failure.ShouldBeNull();
            loggers.Logger.Records.Count(record => record.EventId == StalledEventId).ShouldBe(1);
            loggers.Logger.Records.Count(record => record.EventId == RecoveredEventId).ShouldBe(1);
        });
    }

    private LearnerOptions Options(string bootstrapServers, string groupId)
    {
        LearnerOptions options = LearnerHarness.Options(
            bootstrapServers, Topic, groupId, storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
        options.RoundWriteStallThreshold = TimeSpan.FromMilliseconds(300);
        return options;
    }
}
