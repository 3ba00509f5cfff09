using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// The pause marker's write after training diverged, into a store directory replaced while the learner runs. Like the
/// learner's other store writes, it must stop the learner and leave the replacement directory without a marker.
/// </summary>
public sealed class ReplacedStoreMarkerTests : IDisposable
{
    private const string Topic = "replaced-store-marker";

    private readonly TemporaryDirectory parent = new("continualserve-replaced-store-marker-");

    public void Dispose() => parent.Dispose();

    // A learning rate of 1e30 makes every loss after Adam's first update non-finite, so the learner rolls back, diverges
    // again and, past Learner:Checkpoint:MaxRollbacks, writes the pause marker.
    [Fact(Timeout = 120_000)]
    public async Task MarkerNotWrittenIntoReplacement()
    {
        await Task.Run(async () =>
        {
            string storePath = Path.Combine(parent.Path, "store");
            Directory.CreateDirectory(storePath);
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "replaced-store-marker", storePath, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            options.Trainer.LearningRate = 1e30;
            options.Trainer.GradientClipNorm = 0;
            options.Checkpoint.MaxRollbacks = 1;
            using var learner = new ContinualLearner(options, new RecordingLoggerFactory());
            learner.FaultHooks.BeforePauseMarkerWrite = () =>
            {
                Directory.Move(storePath, Path.Combine(parent.Path, "moved"));
                Directory.CreateDirectory(storePath);
            };
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 400), "only");

            await LearnerHarness.WaitUntilAsync(
                () => learner.Failure is not null || learner.Status.IsDiverged, "the learner neither stopped nor reported divergence");
            learner.Failure.ShouldBeOfType<StoreDirectoryChangedException>();
            File.Exists(Path.Combine(storePath, StoreControlFiles.LearningPausedFileName)).ShouldBeFalse();
            learner.Status.IsDiverged.ShouldBeFalse();
        });
    }
}
