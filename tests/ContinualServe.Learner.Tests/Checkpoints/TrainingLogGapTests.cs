using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Checkpoints;

/// <summary>
/// A run without the training log between two runs with it. The checkpoint that run writes records no log length, so
/// the next run with the log keeps the ids that the first run logged instead of cutting the log to 0 bytes.
/// </summary>
public sealed class TrainingLogGapTests : IDisposable
{
    private const string Topic = "training-log-gap";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-training-log-gap-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task RunWithoutLogKeepsLoggedIds()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            string log = Path.Combine(Options(broker.BootstrapServers, writeLog: true).Checkpoint.ResolveDirectory(storeDirectory.Path), TrainingLog.FileName);

            long firstTrained = await RunAsync(broker, writeLog: true, first: 0);
            IReadOnlyList<string> logged = TrainingLog.ReadIds(log);
            logged.Count.ShouldBe((int)firstTrained);

            await RunAsync(broker, writeLog: false, first: 100);
            await RunAsync(broker, writeLog: true, first: 200);

            IReadOnlyList<string> kept = TrainingLog.ReadIds(log);
            kept.Take(logged.Count).ShouldBe(logged, "the ids logged before the run without a log were cut");
            kept.ShouldNotContain(id => id.StartsWith("run100-", StringComparison.Ordinal), "the run without a log wrote ids");
            kept.ShouldContain(id => id.StartsWith("run200-", StringComparison.Ordinal), "the last run logged nothing");
        });
    }

    // Trains 100 new records in one learner run and returns the examples it trained.
    private async Task<long> RunAsync(EmbeddedKafkaBroker broker, bool writeLog, int first)
    {
        using var learner = new ContinualLearner(Options(broker.BootstrapServers, writeLog), NullLoggerFactory.Instance);
        learner.Start();
        LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(first, 100), "run" + first);
        await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == first + 100, $"the run from record {first} did not publish its round");
        learner.Stop(TimeSpan.FromSeconds(10)).ShouldBeTrue();
        return learner.Status.Trained;
    }

    private LearnerOptions Options(string bootstrapServers, bool writeLog)
    {
        LearnerOptions options = LearnerHarness.Options(
            bootstrapServers, Topic, "training-log-gap", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
        options.Checkpoint.WriteTrainingLog = writeLog;
        options.Promotion.Enabled = false;
        return options;
    }
}
