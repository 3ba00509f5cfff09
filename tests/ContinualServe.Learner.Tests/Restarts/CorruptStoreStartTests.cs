using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Restarts;

/// <summary>A start on a store whose only version is corrupt, which the learner must not report as an empty store.</summary>
public sealed class CorruptStoreStartTests : IDisposable
{
    private const string Topic = "corrupt-store-examples";
    private const int NoIntactVersionEventId = 275;
    private const int EmptyStoreEventId = 202;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-corrupt-store-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task CorruptOnlyVersionIsReported()
    {
        await Task.Run(() =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "corrupt-store", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            SaveCorruptVersion(options.InitialSpec);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);

            long started = learner.Start().Number;
            learner.Stop(TimeSpan.FromSeconds(30)).ShouldBeTrue("the learner did not stop");

            started.ShouldBe(2, "the untrained version is numbered above the corrupt one");
            LogRecord warning = loggers.Logger.Records.Single(record => record.EventId == NoIntactVersionEventId);
            warning.Message.ShouldContain("has no intact version (1 found");
            loggers.Logger.Records.ShouldNotContain(record => record.EventId == EmptyStoreEventId);
        });
    }

    private void SaveCorruptVersion(ModelSpec spec)
    {
        var store = new ModelStore(storeDirectory.Path);
        torch.manual_seed(1);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(spec);
        ModelVersion version = store.Save(spec, module, new ModelManifest());
        byte[] weights = File.ReadAllBytes(version.WeightsPath);
        weights[weights.Length / 2] ^= 0xFF;
        File.WriteAllBytes(version.WeightsPath, weights);
    }
}
