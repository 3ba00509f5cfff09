using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// The pause marker's write after training diverged, blocked by the volume as a hung NFS server would block it. The
/// learner reports itself diverged only after the write, so it must warn once and report itself not ready while the
/// write is held.
/// </summary>
public sealed class StalledMarkerWriteTests : IDisposable
{
    private const string Topic = "stalled-marker-write";
    private const int StalledEventId = 279;
    private const int RecoveredEventId = 280;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-stalled-marker-write-");

    public void Dispose() => storeDirectory.Dispose();

    // A learning rate of 1e30 makes every loss after Adam's first update non-finite, so the learner rolls back, diverges
    // again and, past Learner:Checkpoint:MaxRollbacks, writes the pause marker.
    [Fact(Timeout = 120_000)]
    public async Task StalledMarkerWriteUnready()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "stalled-marker-write", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            options.RoundWriteStallThreshold = TimeSpan.FromMilliseconds(300);
            options.Trainer.LearningRate = 1e30;
            options.Trainer.GradientClipNorm = 0;
            options.Checkpoint.MaxRollbacks = 1;
            string markerPath = Path.Combine(storeDirectory.Path, StoreControlFiles.LearningPausedFileName);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            using var releaseWrite = new ManualResetEventSlim();
            learner.FaultHooks.BeforePauseMarkerWrite = () => releaseWrite.Wait(TimeSpan.FromSeconds(30));
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 400), "only");

            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsMarkerWriteStalled, "the held write of the pause marker was not reported as stalled");
            learner.IsReady.ShouldBeFalse();
            learner.Status.IsDiverged.ShouldBeFalse("the learner reports divergence only after the marker is written");

            // Several thresholds pass while the write is still held, and the warning must not repeat.
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            learner.IsReady.ShouldBeFalse();
            LogRecord warning = loggers.Logger.Records.Single(record => record.EventId == StalledEventId);
            warning.Level.ShouldBe(LogLevel.Warning);
            warning.Message.ShouldContain(markerPath);
            warning.Message.ShouldContain("Learner:RoundWriteStallThreshold");

            releaseWrite.Set();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsDiverged, "the learner did not report divergence after the write returned");
            learner.Status.IsMarkerWriteStalled.ShouldBeFalse();
            learner.IsReady.ShouldBeFalse("a diverged learner is not ready");
            File.Exists(markerPath).ShouldBeTrue();
            learner.Failure.ShouldBeNull();
            loggers.Logger.Records.Count(record => record.EventId == StalledEventId).ShouldBe(1);
            loggers.Logger.Records.Single(record => record.EventId == RecoveredEventId).Message.ShouldContain(markerPath);
        });
    }
}
