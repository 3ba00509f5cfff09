using System.Diagnostics;
using System.Text.RegularExpressions;
using Confluent.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>
/// <c>continualserve broker</c> as a child process: the topics it creates and its stop on SIGTERM. Ctrl+C (SIGINT) runs
/// the same handler but is not tested here: a test run started in the background by a non-interactive shell ignores
/// SIGINT, and the child inherits that, so the signal would never arrive.
/// </summary>
public sealed class BrokerCommandTests
{
    [Fact]
    public async Task BrokerCreatesTopicsAndStopsOnTerm()
    {
        using var temporary = new TemporaryDirectory();
        await using ContinualServeProcess broker = ContinualServeProcess.Start("broker", temporary.Path,
            "broker", "--topic", "cats", "--version-topic", "cat-versions");
        DateTime deadline = DateTime.UtcNow.AddSeconds(30);
        while (!broker.OutputTail.Contains("Press Ctrl+C to stop.", StringComparison.Ordinal) && DateTime.UtcNow < deadline && !broker.HasExited)
        {
            await Task.Delay(100);
        }

        string bootstrap = Regex.Match(broker.OutputTail, @"bootstrap servers: (\S+)").Groups[1].Value;
        bootstrap.ShouldNotBeEmpty(broker.OutputTail);
        using (IAdminClient admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrap }).Build())
        {
            Metadata metadata = admin.GetMetadata(TimeSpan.FromSeconds(10));
            metadata.Topics.Select(topic => topic.Topic).ShouldBe(["cats", "cats.dlq", "cat-versions"], ignoreOrder: true);
        }

        using (Process kill = Process.Start("kill", ["-TERM", broker.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        (await broker.WaitForExitAsync(TimeSpan.FromSeconds(30))).ShouldBe(0, broker.OutputTail);
        broker.OutputTail.ShouldContain("broker stopped; its topics and records are gone");
    }
}
