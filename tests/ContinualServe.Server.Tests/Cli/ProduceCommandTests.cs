using System.Text;
using Confluent.Kafka;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>
/// <c>continualserve produce --csv</c> and <c>--jsonl</c>, in both record formats, run as a child process against the
/// embedded broker, with the topic read back to check what the broker stored.
/// </summary>
public sealed class ProduceCommandTests : IDisposable
{
    private const string CsvHeader = "id,task,label,f0,f1,f2,f3\n";

    // Four features and three classes keep the files small, and --features and --classes pass the same counts.
    private static readonly LabeledExample[] Expected =
    [
        new("img-1", 1, 0, [0f, 12f, 255f, 7f]),
        new("img,\"2\"", 2, 2, [0.5f, -100f, 3.25f, 4f]),
        new("img-3", 7, 1, [0f, 0f, 0f, 0f]),
    ];

    private readonly string directory = Path.Combine(Path.GetTempPath(), "continualserve-produce-" + Guid.NewGuid().ToString("N"));
    private readonly ExampleRecordCodec codec = new(featureCount: 4, classCount: 3);

    public ProduceCommandTests() => Directory.CreateDirectory(directory);

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact(Timeout = 20_000)]
    public async Task FilesProducedInOrderById()
    {
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("produce-csv", partitionCount: 1);
        broker.CreateTopic("produce-jsonl", partitionCount: 1);
        broker.CreateTopic("produce-binary", partitionCount: 1);
        string csv = Write("examples.csv", CsvHeader
            + "img-1,1,0,0,12,255,7\n"
            + "\"img,\"\"2\"\"\",2,2,0.5,-1e2,3.25,4\n"
            + "img-3,7,1,0,0,0,0\n");
        string jsonl = Write("examples.jsonl", "{\"id\":\"img-1\",\"task\":1,\"label\":0,\"features\":[0,12,255,7]}\n"
            + "{\"features\":[0.5,-100,3.25,4],\"id\":\"img,\\\"2\\\"\",\"label\":2,\"task\":2}\n"
            + "{\"id\":\"img-3\",\"task\":7,\"label\":1,\"features\":[0,0,0,0]}\n");

        foreach ((string topic, string option, string path, string format) in new[]
        {
            ("produce-csv", "--csv", csv, "json"), ("produce-jsonl", "--jsonl", jsonl, "json"), ("produce-binary", "--csv", csv, "binary"),
        })
        {
            (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(
                ["produce", "--bootstrap-servers", broker.BootstrapServers, "--topic", topic, option, path, "--features", "4", "--classes", "3", "--record-format", format]);

            exitCode.ShouldBe(0, standardError);
            standardOutput.ShouldContain($"validated 3 examples in {path}");
            standardOutput.ShouldContain($"produced 3 records to {topic}; the broker acknowledged every one");
            List<Message<string, byte[]>> messages = ReadTopic(broker.BootstrapServers, topic, Expected.Length);
            messages.Select(message => message.Key).ShouldBe(Expected.Select(example => example.Id), $"keys in {topic}");
            for (int index = 0; index < Expected.Length; index++)
            {
                BinaryExampleRecord.HasMagic(messages[index].Value).ShouldBe(format == "binary", $"{topic} offset {index} is in the {format} format");
                codec.TryDecode(messages[index].Value, out LabeledExample? decoded, out string error).ShouldBeTrue($"{topic} offset {index}: {error}");
                decoded.ShouldNotBeNull();
                decoded.Id.ShouldBe(Expected[index].Id);
                decoded.Task.ShouldBe(Expected[index].Task);
                decoded.Label.ShouldBe(Expected[index].Label);
                decoded.Features.ShouldBe(Expected[index].Features, $"{topic} offset {index}");
            }
        }
    }

    [Theory(Timeout = 20_000)]
    [InlineData("--csv", "invalid.csv", CsvHeader + "a,1,0,0,0,0,0\nb,1,5,0,0,0,0\n", "line 3: column 'label' is '5'; expected an integer from 0 to 2")]
    [InlineData("--jsonl", "invalid.jsonl", "{\"id\":\"a\",\"task\":1,\"label\":0,\"features\":[0,0,0,0]}\n{\"id\":\"b\",\"task\":1,\"label\":0,\"features\":[0,0,0]}\n", "line 2: field 'features' has 3 values; expected 4")]
    [InlineData("--jsonl", "evil-id.jsonl", "{\"id\":\"a\",\"task\":1,\"label\":0,\"features\":[0,0,0,0]}\n{\"id\":\"evil\\nfake-id-line\",\"task\":1,\"label\":0,\"features\":[0,0,0,0]}\n", "line 2: field 'id' contains the character U+000A at index 4; ids may not contain control characters or line separators")]
    [InlineData("--csv", "tab-id.csv", CsvHeader + "a\tb,1,0,0,0,0,0\n", "line 2: column 'id' contains the character U+0009 at index 1; ids may not contain control characters or line separators")]
    public async Task InvalidFileExitsTwoAndProducesNothing(string option, string name, string content, string problem)
    {
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("produce-invalid", partitionCount: 1);
        string path = Write(name, content);

        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(
            ["produce", "--bootstrap-servers", broker.BootstrapServers, "--topic", "produce-invalid", option, path, "--features", "4", "--classes", "3"]);

        exitCode.ShouldBe(2, standardError);
        standardError.Trim().ShouldBe($"{path} {problem}");
        standardOutput.ShouldNotContain("produced");
        using IConsumer<string, byte[]> consumer = CreateConsumer(broker.BootstrapServers);
        WatermarkOffsets watermarks = consumer.QueryWatermarkOffsets(new TopicPartition("produce-invalid", 0), TimeSpan.FromSeconds(5));
        watermarks.High.Value.ShouldBe(0);
    }

    [Fact(Timeout = 20_000)]
    public async Task KafkaPropertiesNamedAndUsed()
    {
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("produce-properties", partitionCount: 1);
        string csv = Write("properties.csv", CsvHeader + "img-1,1,0,0,12,255,7\n");
        string properties = Write("client.properties", "# the producer's name on the broker\nclient.id=produce-test\n");

        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(
            ["produce", "--bootstrap-servers", broker.BootstrapServers, "--topic", "produce-properties", "--csv", csv,
             "--features", "4", "--classes", "3", "--kafka-config", properties]);

        exitCode.ShouldBe(0, standardError);
        standardOutput.ShouldContain($"Kafka clients take extra librdkafka properties from {properties}: client.id");
        standardOutput.ShouldContain("produced 1 records to produce-properties");
    }

    [Fact(Timeout = 20_000)]
    public async Task RecordAtMessageLimitProduced()
    {
        // Validation allows an id and record of ExampleProducer.MaxKeyAndValueBytes together, so the producer must send that much.
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("produce-limit", partitionCount: 1);
        string Record(int idLength) => "{\"id\":\"" + new string('x', idLength) + "\",\"task\":1,\"label\":0,\"features\":[0,1,2,30]}";
        int idLength = (ExampleProducer.MaxKeyAndValueBytes - Record(0).Length) / 2;
        string path = Write("limit.jsonl", Record(idLength) + "\n");
        (idLength + Record(idLength).Length).ShouldBe(ExampleProducer.MaxKeyAndValueBytes);

        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(
            ["produce", "--bootstrap-servers", broker.BootstrapServers, "--topic", "produce-limit", "--jsonl", path, "--features", "4", "--classes", "3"]);

        exitCode.ShouldBe(0, standardError);
        standardOutput.ShouldContain("produced 1 records to produce-limit");
        ReadTopic(broker.BootstrapServers, "produce-limit", 1)[0].Key.Length.ShouldBe(idLength);
    }

    [Theory(Timeout = 20_000)]
    [InlineData("--csv /nonexistent/examples.csv", "/nonexistent/examples.csv: file not found. Check the --csv path.")]
    [InlineData("--jsonl /nonexistent/examples.jsonl", "/nonexistent/examples.jsonl: file not found. Check the --jsonl path.")]
    [InlineData("--csv a.csv --jsonl b.jsonl", "--jsonl, --csv and --data are mutually exclusive. Give one of them.")]
    [InlineData("--csv a.csv --data /nonexistent/fashion-mnist", "--jsonl, --csv and --data are mutually exclusive. Give one of them.")]
    [InlineData("--jsonl a.jsonl --tasks 2", "--tasks and --test-set apply only to the Fashion-MNIST IDX files of --data")]
    [InlineData("--csv a.csv --test-set", "--tasks and --test-set apply only to the Fashion-MNIST IDX files of --data")]
    [InlineData("--features 4", "--features and --classes apply only to --jsonl and --csv files")]
    [InlineData("--csv a.csv --features 0", "--features must be 1 or more, but it is 0.")]
    [InlineData("--csv a.csv --classes 1", "--classes must be 2 or more, but it is 1.")]
    [InlineData("--csv a.csv --group learners --max-lag 0", "--max-lag must be 1 or more, but it is 0.")]
    [InlineData("--csv a.csv --group learners --max-lag-bytes 0", "--max-lag-bytes must be 1 or more, but it is 0.")]
    [InlineData("--csv a.csv --max-lag 100", "--max-lag and --max-lag-bytes pace the stream to --group's committed offsets; pass --group with them, or leave them out.")]
    [InlineData("--csv a.csv --max-lag-bytes 100", "--max-lag and --max-lag-bytes pace the stream to --group's committed offsets; pass --group with them, or leave them out.")]
    [InlineData("--csv /tmp", "/tmp: is a directory. Give the --csv file itself.")]
    [InlineData("--jsonl a.jsonl --features 2000000000", "--features must be at most 499982, because each feature takes at least 2 bytes of a message of at most 999964 bytes; it is 2000000000.")]
    public async Task InvalidOptionsExitTwo(string arguments, string message)
    {
        // Port 1 normally has no listener, so a run that got past these checks would not exit with 2.
        string[] command = ["produce", "--bootstrap-servers", "127.0.0.1:1", .. arguments.Split(' ')];

        (int exitCode, _, string standardError) = await ContinualServeProcess.RunAsync(command);

        exitCode.ShouldBe(2, standardError);
        standardError.ShouldContain(message);
    }

    private static IConsumer<string, byte[]> CreateConsumer(string bootstrapServers) =>
        new ConsumerBuilder<string, byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "produce-test-" + Guid.NewGuid().ToString("N"),
            EnableAutoCommit = false,
        }).Build();

    // Reads the first count records of partition 0, for at most 10 s.
    private static List<Message<string, byte[]>> ReadTopic(string bootstrapServers, string topic, int count)
    {
        using IConsumer<string, byte[]> consumer = CreateConsumer(bootstrapServers);
        consumer.Assign(new TopicPartitionOffset(topic, 0, Offset.Beginning));
        var messages = new List<Message<string, byte[]>>();
        DateTime deadline = DateTime.UtcNow.AddSeconds(10);
        while (messages.Count < count && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { IsPartitionEOF: false } result)
            {
                messages.Add(result.Message);
            }
        }

        messages.Count.ShouldBe(count, $"records read from {topic} within 10 s");
        return messages;
    }

    private string Write(string name, string content)
    {
        string path = Path.Combine(directory, name);
        File.WriteAllText(path, content, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
        return path;
    }
}
