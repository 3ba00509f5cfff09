using ContinualServe.IntegrationTests.Distribution;
using ContinualServe.Learner.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.IntegrationTests.Reliability;

/// <summary>
/// <c>continualserve all</c> as a child process whose store directory is renamed while it runs: the learner's next
/// round fails with an error that names the directory, and the process exits with code 1 without creating the
/// directory again or numbering versions from 1 in it.
/// </summary>
public sealed class StoreDirectoryRenameTests
{
    [Fact(Timeout = 240_000)]
    public async Task RenamedStoreStopsLearnerWithExitOne()
    {
        using var temporary = new TemporaryDirectory();
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(ReplicaDistributionTests.ExampleTopic, 1);
        broker.CreateTopic(ReplicaDistributionTests.ExampleTopic + ".dlq", 1);
        broker.CreateTopic("model-versions", 1);
        string store = Path.Combine(temporary.Path, "models");
        string moved = store + ".moved";

        (ContinualServeProcess started, _) = await ContinualServeProcess.StartOnAnyPortAsync("all", temporary.Path, "http", url =>
        [
            "all", "--urls", url, "--bootstrap-servers", broker.BootstrapServers, "--topic", ReplicaDistributionTests.ExampleTopic,
            "--store", store, "--device", "cpu", "--Learner:IdleRoundDelay=00:00:00.300",
        ]);
        await using ContinualServeProcess all = started;
        await ReplicaDistributionTests.ProduceTaskAsync(broker.BootstrapServers);
        // The rename comes once version 2 is served and announced, when the learner waits for more examples, as an
        // operator's rename of a running store would.
        await WaitForOutputAsync(all, "swapped from version 1 to 2");
        await WaitForOutputAsync(all, "Announced version 2 ");

        Directory.Move(store, moved);
        await ReplicaDistributionTests.ProduceTaskAsync(broker.BootstrapServers);
        int exitCode = await all.WaitForExitAsync(TimeSpan.FromSeconds(90));

        exitCode.ShouldBe(1, all.OutputTail);
        // The round writes its checkpoint directory, inside the store, first, so that is the directory the error names.
        all.OutputTail.ShouldContain($"'{store}/learner-checkpoint' no longer exists", customMessage: all.OutputTail);
        all.OutputTail.ShouldContain("The process stopped because the learner failed: ");
        Directory.Exists(store).ShouldBeFalse();
        Directory.Exists(Path.Combine(moved, "v00000002")).ShouldBeTrue();
        Directory.Exists(Path.Combine(moved, "v00000003")).ShouldBeFalse();
    }

    private static async Task WaitForOutputAsync(ContinualServeProcess process, string text)
    {
        DateTime deadline = DateTime.UtcNow.AddSeconds(90);
        while (!process.OutputTail.Contains(text, StringComparison.Ordinal))
        {
            process.HasExited.ShouldBeFalse(process.OutputTail);
            DateTime.UtcNow.ShouldBeLessThan(deadline, $"no '{text}' in the output: " + process.OutputTail);
            await Task.Delay(200);
        }
    }
}
