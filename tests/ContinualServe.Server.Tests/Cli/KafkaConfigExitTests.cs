using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>Extra Kafka client properties that cannot work stop every command that takes them with exit code 2, before any client starts.</summary>
public sealed class KafkaConfigExitTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-kafka-config-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact(Timeout = 60_000)]
    public async Task LearnRejectsAPropertyLibrdkafkaDoesNotKnow()
    {
        string file = Write("security.protocol=SASL_SSL\nsasl.mechanisms.typo=PLAIN\n");

        string output = await RunExpectingExitTwoAsync(
            ["learn", "--bootstrap-servers", "127.0.0.1:9", "--store", Path.Combine(directory, "models"), "--device", "cpu", "--kafka-config", file]);

        output.ShouldContain($"Kafka: librdkafka rejected a property from {file}:");
        output.ShouldContain("sasl.mechanisms.typo");
    }

    [Fact(Timeout = 60_000)]
    public async Task ServeRejectsAReservedPropertyFromConfiguration()
    {
        string output = await RunExpectingExitTwoAsync(
            ["serve", "--urls", "http://127.0.0.1:0", "--store", Path.Combine(directory, "models"), "--device", "cpu", "--Kafka:Properties:group.id=other"]);

        output.ShouldContain("Kafka:Properties:group.id: 'group.id' cannot be set here, because ContinualServe sets it (--group).");
    }

    [Fact(Timeout = 60_000)]
    public async Task ServeRejectsAMissingFile()
    {
        string missing = Path.Combine(directory, "absent.properties");

        string output = await RunExpectingExitTwoAsync(
            ["serve", "--urls", "http://127.0.0.1:0", "--store", Path.Combine(directory, "models"), "--device", "cpu", "--kafka-config", missing]);

        output.ShouldContain($"The Kafka properties file {missing} cannot be read:");
    }

    [Fact(Timeout = 60_000)]
    public async Task ProduceRejectsBootstrapServersInTheFile()
    {
        string file = Write("# the address belongs on the command line\nbootstrap.servers=kafka:9092\n");

        string output = await RunExpectingExitTwoAsync(["produce", "--bootstrap-servers", "127.0.0.1:9", "--kafka-config", file]);

        output.ShouldContain($"{file}, line 2: 'bootstrap.servers' cannot be set here, because ContinualServe sets it (--bootstrap-servers).");
    }

    [Fact(Timeout = 60_000)]
    public async Task ProduceReadsPropertiesFromEnvironment()
    {
        string output = await RunExpectingExitTwoAsync(
            ["produce", "--bootstrap-servers", "127.0.0.1:9"],
            new Dictionary<string, string> { ["Kafka__Properties__security.protocol"] = "TLS" });

        output.ShouldContain("librdkafka rejected a property from Kafka:Properties: ");
        output.ShouldContain("security.protocol");
    }

    private static async Task<string> RunExpectingExitTwoAsync(string[] arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(arguments, environment);
        string output = standardOutput + standardError;
        exitCode.ShouldBe(2, output);
        output.ShouldNotContain("Unhandled exception");
        return output;
    }

    private string Write(string text)
    {
        string path = Path.Combine(directory, "client.properties");
        File.WriteAllText(path, text);
        return path;
    }
}
