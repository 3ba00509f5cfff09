using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// A server that reads the learner's store loads a version as soon as it is saved, and a learner killed before that
/// version's checkpoint is complete discards the version at its restart. So the checkpoint's data files must be on disk
/// before the version is saved, leaving only the checkpoint's flush and rename between the two.
/// </summary>
public sealed class RoundWriteOrderTests : IDisposable
{
    private const string Topic = "round-write-order";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-round-write-order-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task CheckpointFilesPrecedeVersion()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "round-write-order", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.ExperienceReplay }, hiddenSize: 16);
            using var learner = new ContinualLearner(options, new RecordingLoggerFactory());
            string[]? filesBeforeSave = null;
            learner.FaultHooks.BeforeRoundWrite = () =>
            {
                // The round write's temporary checkpoint directory is the only one under the store at this point.
                string prepared = Directory.EnumerateDirectories(storeDirectory.Path, ".tmp-*", SearchOption.AllDirectories).Single();
                filesBeforeSave = Directory.EnumerateFiles(prepared).Select(Path.GetFileName).OfType<string>().ToArray();
            };
            learner.Start();
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "only");

            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100, "the round was not published");

            filesBeforeSave.ShouldNotBeNull();
            filesBeforeSave.ShouldContain(LearnerCheckpoint.WeightsFileName);
            filesBeforeSave.ShouldContain(LearnerCheckpoint.ReplayFileName);
            filesBeforeSave.ShouldContain(LearnerCheckpoint.HoldoutsFileName);
            filesBeforeSave.ShouldContain(LearnerCheckpoint.OptimizerFileName);
            filesBeforeSave.ShouldNotContain(LearnerCheckpoint.MetadataFileName);
            learner.Failure.ShouldBeNull();
        });
    }
}
