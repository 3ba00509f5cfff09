using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Checkpoints;

/// <summary>
/// A learner that writes a training log, whose checkpoint directory is replaced while it runs. The log lives in that
/// directory, so the round must stop the learner with the directory's error before it appends to a log there.
/// </summary>
public sealed class ReplacedCheckpointLogTests : IDisposable
{
    private const string Topic = "replaced-checkpoint-log";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-replaced-checkpoint-log-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task LogNotCreatedInReplacement()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "replaced-checkpoint-log", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            options.Checkpoint.WriteTrainingLog = true;
            using var learner = new ContinualLearner(options, new RecordingLoggerFactory());
            string checkpoints = "";
            learner.FaultHooks.BeforeTrainingLogFlush = () =>
            {
                if (checkpoints.Length == 0 && learner.Status.Consumed > 0)
                {
                    checkpoints = Path.Combine(storeDirectory.Path, "learner-checkpoint");
                    Directory.Move(checkpoints, checkpoints + "-moved");
                    Directory.CreateDirectory(checkpoints);
                }
            };
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 400), "only");

            await LearnerHarness.WaitUntilAsync(() => learner.Failure is not null, "the learner did not stop on the replaced checkpoint directory");
            learner.Failure.ShouldBeOfType<StoreDirectoryChangedException>();
            File.Exists(Path.Combine(checkpoints, TrainingLog.FileName)).ShouldBeFalse("the log was created again in the replacement");
        });
    }
}
