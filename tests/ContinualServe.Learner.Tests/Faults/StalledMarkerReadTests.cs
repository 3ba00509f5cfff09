using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// A read of the store's pause marker that the volume blocks, as a hung NFS server would. The learner thread reads the
/// marker twice a second, so such a read stops consumption, and the learner must warn once and report itself not ready
/// until the read returns.
/// </summary>
public sealed class StalledMarkerReadTests : IDisposable
{
    private const string Topic = "stalled-marker";
    private const int StalledEventId = 273;
    private const int RecoveredEventId = 274;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-stalled-marker-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task StalledMarkerReadUnready()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "stalled-marker", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            options.RoundWriteStallThreshold = TimeSpan.FromMilliseconds(300);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            using var holdReads = new ManualResetEventSlim();
            using var releaseRead = new ManualResetEventSlim();
            learner.FaultHooks.BeforePauseMarkerRead = () =>
            {
                if (holdReads.IsSet)
                {
                    releaseRead.Wait(TimeSpan.FromSeconds(30));
                }
            };
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");

            // On a loaded machine an unheld read can pass the 300 ms threshold too, and it logs its own stall and recovery.
            int stalledBefore = Count(loggers, StalledEventId);
            int recoveredBefore = Count(loggers, RecoveredEventId);
            holdReads.Set();
            await LearnerHarness.WaitUntilAsync(() => !learner.IsReady, "the held read of the pause marker did not make the learner not ready");
            learner.Status.IsFileReadStalled.ShouldBeTrue();

            // Several thresholds pass while the read is still held, and the warning must not repeat.
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            learner.IsReady.ShouldBeFalse();
            LogRecord warning = loggers.Logger.Records.Where(record => record.EventId == StalledEventId).Skip(stalledBefore).Single();
            warning.Level.ShouldBe(LogLevel.Warning);
            warning.Message.ShouldContain(Path.Combine(storeDirectory.Path, StoreControlFiles.LearningPausedFileName));
            warning.Message.ShouldContain("Learner:RoundWriteStallThreshold");

            holdReads.Reset();
            releaseRead.Set();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready after the read returned");
            Count(loggers, RecoveredEventId).ShouldBe(recoveredBefore + 1);
            Count(loggers, StalledEventId).ShouldBe(stalledBefore + 1);
            learner.Status.IsRoundWriteStalled.ShouldBeFalse();
            learner.Status.IsFileReadStalled.ShouldBeFalse();
        });
    }

    private static int Count(RecordingLoggerFactory loggers, int eventId) =>
        loggers.Logger.Records.Count(record => record.EventId == eventId);
}
