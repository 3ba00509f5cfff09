using ContinualServe.Learner.Data;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Promotion;

/// <summary>
/// The golden-set accuracy gauge after the operator removes the golden set: a version promoted without one has no
/// golden-set accuracy, so the gauge must leave the scrape instead of showing an earlier version's value.
/// </summary>
/// <remarks>
/// The gauge is process-wide and other learner tests promote versions with and without golden sets, so this class
/// runs alone.
/// </remarks>
[Collection(nameof(GoldenSetGaugeTests))]
[CollectionDefinition(nameof(GoldenSetGaugeTests), DisableParallelization = true)]
public sealed class GoldenSetGaugeTests : IDisposable
{
    private const string Topic = "golden-gauge";
    // The sample line, not the HELP and TYPE lines that name the metric too.
    private const string GaugeSample = "\ncontinualserve_golden_set_accuracy ";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-golden-gauge-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task RemovedGoldenSetLeavesScrape()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            int[] taskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();
            new GoldenSet
            {
                Examples = SplitTasks.OrderByTask(TestData.TestSet, maxTasks: 1).Take(20)
                    .Select(index => TestData.Example(TestData.TestSet, index, "golden"))
                    .Select(example => new GoldenExample(example.Label, example.Features))
                    .ToArray(),
                UploadedAt = DateTimeOffset.UtcNow,
            }.Save(storeDirectory.Path);
            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "golden-gauge", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 32);
            options.Promotion.MaxForgetting = 1;
            options.Promotion.MaxAverageAccuracyDrop = 1;
            SeededModules.SaveInitialVersion(storeDirectory.Path, options.InitialSpec, seed: 1);
            using var learner = new ContinualLearner(options, NullLoggerFactory.Instance);
            learner.Start();

            LearnerHarness.Produce(broker.BootstrapServers, Topic, taskOne, "first");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2, "the first round was not promoted");
            (await ScrapeAsync()).ShouldContain(GaugeSample);

            File.Delete(Path.Combine(storeDirectory.Path, GoldenSet.FileName));
            LearnerHarness.Produce(broker.BootstrapServers, Topic, taskOne, "second");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 3, "the second round was not promoted");

            learner.Store.TryLoadLatest()!.Manifest.Evaluation!.GoldenSetAccuracy.ShouldBeNull();
            (await ScrapeAsync()).ShouldNotContain(GaugeSample);
        });
    }

    private static async Task<string> ScrapeAsync()
    {
        using var stream = new MemoryStream();
        await Metrics.DefaultRegistry.CollectAndExportAsTextAsync(stream);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
