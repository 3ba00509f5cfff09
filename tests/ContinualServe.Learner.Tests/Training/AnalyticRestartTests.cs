using ContinualServe.Learner.Data;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Training;

/// <summary>Restarts that change to or from the analytic strategy on the same store and checkpoint directory.</summary>
public sealed class AnalyticRestartTests : IDisposable
{
    private const string Topic = "analytic-restart-examples";
    private const int HiddenSize = 32;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-analytic-restart-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task GradientCheckpointStopsAnalyticStart()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            await TrainFirstVersionAsync(broker.BootstrapServers, ReplayStrategy.DerPlusPlus);

            using var analytic = new ContinualLearner(Options(broker.BootstrapServers, ReplayStrategy.Analytic), NullLoggerFactory.Instance);

            IncompatibleStateException exception = Should.Throw<IncompatibleStateException>(() => analytic.Start());
            exception.Message.ShouldContain("not an analytic head file");
            exception.Message.ShouldContain("--store");
            new ModelStore(storeDirectory.Path).TryLoadLatest()!.Number.ShouldBe(2);
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task AnalyticCheckpointRestartsAdam()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            await TrainFirstVersionAsync(broker.BootstrapServers, ReplayStrategy.Analytic);

            using var gradient = new ContinualLearner(Options(broker.BootstrapServers, ReplayStrategy.DerPlusPlus), NullLoggerFactory.Instance);
            gradient.Start().Number.ShouldBe(2);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Indices(task: 1)[..64], "second");
            await LearnerHarness.WaitUntilAsync(() => gradient.Status.LatestVersion == 3);
            gradient.Stop(TimeSpan.FromSeconds(10));
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task MissingSumsStopAnalyticStart()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            await TrainFirstVersionAsync(broker.BootstrapServers, ReplayStrategy.Analytic);
            string checkpoints = Path.Combine(storeDirectory.Path, "learner-checkpoint");
            Directory.Delete(checkpoints, recursive: true);

            // Twice, because a start that wrote a checkpoint with empty sums would let the second start pass.
            for (int attempt = 0; attempt < 2; attempt++)
            {
                using var restarted = new ContinualLearner(Options(broker.BootstrapServers, ReplayStrategy.Analytic), NullLoggerFactory.Instance);
                IncompatibleStateException exception = Should.Throw<IncompatibleStateException>(() => restarted.Start());
                exception.Message.ShouldContain("no intact learner checkpoint");
            }
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task CheckpointOfAnotherWidthStopsStart()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            await TrainFirstVersionAsync(broker.BootstrapServers, ReplayStrategy.Analytic);
            string otherStore = storeDirectory.Path + "-narrower";
            LearnerOptions narrower = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "analytic-restart", otherStore, new TrainerOptions { Strategy = ReplayStrategy.Analytic }, HiddenSize / 2);
            narrower.Checkpoint.Directory = Path.Combine(storeDirectory.Path, "learner-checkpoint");
            try
            {
                using var learner = new ContinualLearner(narrower, NullLoggerFactory.Instance);

                IncompatibleStateException exception = Should.Throw<IncompatibleStateException>(() => learner.Start());
                exception.Message.ShouldContain(narrower.Checkpoint.Directory);
                exception.Message.ShouldContain($"hidden sizes [{HiddenSize / 2}]");
            }
            finally
            {
                Directory.Delete(otherStore, recursive: true);
            }
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task ConfiguredWidthIgnoredOnTrainedStore()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            await TrainFirstVersionAsync(broker.BootstrapServers, ReplayStrategy.Analytic);
            LearnerOptions wider = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "analytic-restart", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Analytic }, HiddenSize * 2);
            var loggerFactory = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(wider, loggerFactory);

            learner.Start().Spec.HiddenSizes.ShouldBe([HiddenSize]);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Indices(task: 1)[400..464], "second");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 3);
            learner.Stop(TimeSpan.FromSeconds(10));

            learner.Store.TryLoadLatest()!.Spec.HiddenSizes.ShouldBe([HiddenSize]);
            string warning = loggerFactory.Logger.Messages.Single(message => message.StartsWith("Learner:InitialSpec", StringComparison.Ordinal));
            warning.ShouldContain($"hidden sizes [{HiddenSize * 2}]");
            warning.ShouldContain($"hidden sizes [{HiddenSize}]");
        });
    }

    [Fact]
    public void ConvolutionalStoreStopsAnalyticStart()
    {
        ModelSpec convolutional = new() { Architecture = ModelFactory.CnnArchitecture, HiddenSizes = [4, 8] };
        using (nn.Module<Tensor, Tensor> module = ModelFactory.Create(convolutional))
        {
            _ = new ModelStore(storeDirectory.Path).Save(convolutional, module, new ModelManifest());
        }

        using var learner = new ContinualLearner(Options("127.0.0.1:1", ReplayStrategy.Analytic), NullLoggerFactory.Instance);

        IncompatibleStateException exception = Should.Throw<IncompatibleStateException>(() => learner.Start());
        exception.Message.ShouldContain("'cnn'");
        exception.Message.ShouldContain("version 1");
    }

    private async Task TrainFirstVersionAsync(string bootstrapServers, ReplayStrategy strategy)
    {
        using var learner = new ContinualLearner(Options(bootstrapServers, strategy), NullLoggerFactory.Instance);
        learner.Start();
        LearnerHarness.Produce(bootstrapServers, Topic, Indices(task: 1)[..400], "first");
        await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2);
        learner.Stop(TimeSpan.FromSeconds(10));
    }

    private static int[] Indices(int task) => SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: task).ToArray();

    private LearnerOptions Options(string bootstrapServers, ReplayStrategy strategy) =>
        LearnerHarness.Options(bootstrapServers, Topic, "analytic-restart", storeDirectory.Path, new TrainerOptions { Strategy = strategy }, HiddenSize);
}
