using ContinualServe.Learner.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>
/// The roles as child processes with <c>--kafka-config</c>: every Kafka client takes the file's properties. The embedded
/// broker does not support SASL, so a client that takes them fails its handshake, and that failure shows it used them.
/// </summary>
public sealed class KafkaPropertiesRoleTests
{
    private const string Password = "not-for-the-log-4d1f";

    [Theory(Timeout = 90_000)]
    [InlineData("serve", "--store")]
    [InlineData("learn", "--store")]
    public async Task RoleClientsTakeThePropertiesFile(string role, string storeOption)
    {
        using var temporary = new TemporaryDirectory();
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("model-versions", 1);
        broker.CreateTopic("examples", 1);
        string file = Path.Combine(temporary.Path, "client.properties");
        await File.WriteAllTextAsync(file, $"# cluster credentials\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=ops\nsasl.password={Password}\n");

        await using ContinualServeProcess process = ContinualServeProcess.Start(role, temporary.Path,
            role, "--urls", "http://127.0.0.1:0", storeOption, Path.Combine(temporary.Path, "models"), "--device", "cpu",
            "--bootstrap-servers", broker.BootstrapServers, "--kafka-config", file);
        DateTime deadline = DateTime.UtcNow.AddSeconds(45);
        while (!process.OutputTail.Contains("Failed to initialize SASL", StringComparison.Ordinal) && DateTime.UtcNow < deadline && !process.HasExited)
        {
            await Task.Delay(100);
        }

        process.OutputTail.ShouldContain("Failed to initialize SASL");
        process.OutputTail.ShouldContain($"Kafka clients take extra librdkafka properties from {file}: sasl.mechanism, sasl.password, sasl.username, security.protocol");
        process.OutputTail.ShouldNotContain(Password);
    }
}
