using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Tests.Faults;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Promotion;

/// <summary>
/// A golden set that exists but cannot be read holds the candidate: nothing is rejected, discarded or committed until
/// the golden set is removed, and then the held candidate is promoted with all of its examples. A pause requested
/// during the hold shows in the status.
/// </summary>
[Collection(GoldenSetGaugeGroup.Name)]
public sealed class GoldenSetHoldTests : IDisposable
{
    private const string Topic = "golden-set-hold";
    private const string GroupId = "golden-set-hold";
    private const int HeldEvent = 235;
    private const int ReleasedEvent = 236;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-golden-set-hold-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task UnreadableGoldenSetHoldsCandidate()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, GroupId, storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            string goldenSetPath = Path.Combine(storeDirectory.Path, GoldenSet.FileName);
            await File.WriteAllTextAsync(goldenSetPath, "{\"examples\": [garbage");

            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "held");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsGoldenSetUnusable, "the learner did not hold the candidate");
            learner.IsReady.ShouldBeFalse();
            learner.Status.Rejected.ShouldBe(0, "the candidate was rejected although the golden set could not be read");
            loggers.Logger.Records.Count(record => record.EventId == HeldEvent).ShouldBe(1);
            loggers.Logger.Records.Single(record => record.EventId == HeldEvent).Message.ShouldNotContain("..");

            // The management API pauses and resumes learning through a marker file, which the hold keeps reading.
            StoreControlFiles.SetLearningPaused(storeDirectory.Path, paused: true);
            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsPaused, "the held learner did not read the pause marker");
            StoreControlFiles.SetLearningPaused(storeDirectory.Path, paused: false);
            await LearnerHarness.WaitUntilAsync(() => !learner.Status.IsPaused, "the held learner did not read the removed pause marker");
            learner.Status.IsGoldenSetUnusable.ShouldBeTrue("the pause ended the hold");

            File.Delete(goldenSetPath);
            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100, "the held candidate was not reviewed after the golden set was removed");
            learner.Stop(TimeSpan.FromSeconds(10)).ShouldBeTrue();

            learner.Status.Rejected.ShouldBe(0);
            (learner.Status.Trained + learner.Status.HeldOut).ShouldBe(100, "the held round lost examples");
            learner.Status.IsGoldenSetUnusable.ShouldBeFalse();
            loggers.Logger.Records.Count(record => record.EventId == ReleasedEvent).ShouldBe(1);
            GroupMembership.CommittedOffset(broker.BootstrapServers, Topic, GroupId).ShouldBe(100);
        });
    }
}
