using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// A learner that starts while the store's pause marker is set, as after a kill during a pause. It must read no record
/// until learning is resumed.
/// </summary>
public sealed class PausedStartTests : IDisposable
{
    private const string Topic = "paused-start";
    private const int Records = 200;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-paused-start-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task PausedStartReadsNothing()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, Records), "paused");
            StoreControlFiles.SetLearningPaused(storeDirectory.Path, paused: true);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "paused-start-test", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            using var learner = new ContinualLearner(options, NullLoggerFactory.Instance);
            learner.Start();

            // Without the pause, a learner on the embedded broker has joined the group and read records within 6 s.
            await Task.Delay(TimeSpan.FromSeconds(6));
            LearnerStatus paused = learner.Status;
            StoreControlFiles.SetLearningPaused(storeDirectory.Path, paused: false);
            await LearnerHarness.WaitUntilAsync(() => learner.Status.Consumed == Records, "the resumed learner did not read every record");
            learner.Stop(TimeSpan.FromSeconds(10));

            paused.IsPaused.ShouldBeTrue();
            paused.Consumed.ShouldBe(0, "a learner paused before it started read records");
            paused.LatestVersion.ShouldBe(1, "a learner paused before it started published a version");
        });
    }
}
