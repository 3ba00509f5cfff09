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

    // The optimizer and teacher files of the round's checkpoint are written on the learner thread before the write
    // task starts, and a hung volume blocks them as well, so they count as part of the round write.
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
            using var learner = new ContinualLearner(options, loggers);
            using var releasePrepare = new ManualResetEventSlim();
            learner.FaultHooks.BeforeCheckpointPrepare = () => releasePrepare.Wait(TimeSpan.FromSeconds(30));
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "only");

            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsRoundWriteStalled, "the held checkpoint files were not reported as stalled");
            learner.IsReady.ShouldBeFalse();
            LogRecord warning = loggers.Logger.Records.Single(record => record.EventId == StalledEventId);
            warning.Message.ShouldContain(checkpointDirectory);

            releasePrepare.Set();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100, "the round was not published after the write ended");
            learner.Status.IsRoundWriteStalled.ShouldBeFalse();
            learner.IsReady.ShouldBeTrue();
            loggers.Logger.Records.Count(record => record.EventId == RecoveredEventId).ShouldBe(1);
            loggers.Logger.Records.Count(record => record.EventId == StalledEventId).ShouldBe(1);
        });
    }
}
