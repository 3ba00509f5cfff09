using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Kafka;

public sealed class KafkaClientPropertiesTests : IDisposable
{
    private readonly TemporaryDirectory directory = new("continualserve-kafka-properties-");

    public void Dispose() => directory.Dispose();

    [Fact]
    public void ParseSkipsCommentsAndBlankLines()
    {
        const string text = "# cluster\r\n! also a comment\n\n  security.protocol = SASL_SSL \r\nsasl.mechanism=SCRAM-SHA-512\nsasl.password=a=b c\n";

        Dictionary<string, string> values = KafkaClientProperties.Parse(text, "client.properties");

        values.ShouldBe(new Dictionary<string, string>
        {
            ["security.protocol"] = "SASL_SSL",
            ["sasl.mechanism"] = "SCRAM-SHA-512",
            ["sasl.password"] = "a=b c",
        });
    }

    [Theory]
    [InlineData("client.id=a\nsecurity.protocol SASL_SSL\n", "client.properties, line 2: expected a librdkafka property as name=value")]
    [InlineData("=SASL_SSL\n", "client.properties, line 1: expected a librdkafka property as name=value")]
    [InlineData("client.id=a\n\nclient.id=b\n", "client.properties, line 3: 'client.id' is set twice in the file.")]
    [InlineData("bootstrap.servers=kafka:9092\n", "client.properties, line 1: 'bootstrap.servers' cannot be set here, because ContinualServe sets it (--bootstrap-servers).")]
    [InlineData("client.id=a\nenable.auto.commit=true\n", "client.properties, line 2: 'enable.auto.commit' cannot be set here")]
    [InlineData("partition.assignment.strategy=cooperative-sticky\n", "client.properties, line 1: 'partition.assignment.strategy' cannot be set here")]
    [InlineData("topic.auto.offset.reset=latest\n", "client.properties, line 1: 'topic.auto.offset.reset' cannot be set here")]
    [InlineData("topic.acks=1\n", "client.properties, line 1: 'topic.acks' cannot be set here")]
    [InlineData("dotnet.producer.enable.delivery.reports=false\n", "client.properties, line 1: 'dotnet.producer.enable.delivery.reports' cannot be set here")]
    [InlineData("dotnet.consumer.consume.result.fields=none\n", "client.properties, line 1: 'dotnet.consumer.consume.result.fields' cannot be set here")]
    public void RejectsInvalidLinesWithTheirNumber(string text, string message)
    {
        InvalidDataException exception = Should.Throw<InvalidDataException>(() => KafkaClientProperties.Parse(text, "client.properties"));

        exception.Message.ShouldStartWith(message);
    }

    [Fact]
    public void ConfigurationReplacesTheFilesValue()
    {
        string file = Path.Combine(directory.Path, "client.properties");
        File.WriteAllText(file, "client.id=from-file\nsocket.timeout.ms=30000\n");

        KafkaClientProperties properties = KafkaClientProperties.Load(file, [new("client.id", "from-configuration")]);

        properties.Values.ShouldBe(new Dictionary<string, string> { ["client.id"] = "from-configuration", ["socket.timeout.ms"] = "30000" });
        properties.Source.ShouldBe(file + " and Kafka:Properties");
    }

    [Fact]
    public void NothingConfiguredGivesNone()
    {
        KafkaClientProperties.Load("", []).ShouldBeSameAs(KafkaClientProperties.None);
    }

    [Fact]
    public void RejectsAReservedNameFromConfiguration()
    {
        InvalidDataException exception = Should.Throw<InvalidDataException>(
            () => KafkaClientProperties.Load(null, [new("group.id", "other")]));

        exception.Message.ShouldBe("Kafka:Properties:group.id: 'group.id' cannot be set here, because ContinualServe sets it (--group).");
    }

    [Theory]
    [InlineData("Security.Protocol", "'Security.Protocol' is not a librdkafka property, because librdkafka property names are lower case. Write 'security.protocol'.")]
    [InlineData("Group.Id", "'Group.Id' cannot be set here, because ContinualServe sets it (--group).")]
    [InlineData(" BOOTSTRAP.SERVERS ", "'BOOTSTRAP.SERVERS' cannot be set here, because ContinualServe sets it (--bootstrap-servers).")]
    public void RejectsUpperCaseNamesFromConfiguration(string name, string message)
    {
        InvalidDataException exception = Should.Throw<InvalidDataException>(
            () => KafkaClientProperties.Load(null, [new(name, "x")]));

        exception.Message.ShouldEndWith(message);
    }

    [Fact]
    public void RejectsAnUpperCaseNameInTheFile()
    {
        InvalidDataException exception = Should.Throw<InvalidDataException>(
            () => KafkaClientProperties.Parse("client.id=a\nSasl.Password=secret\n", "client.properties"));

        exception.Message.ShouldBe(
            "client.properties, line 2: 'Sasl.Password' is not a librdkafka property, because librdkafka property names are lower case. Write 'sasl.password'.");
    }

    [Fact]
    public void LoadReadsByteOrderMarkAndCrLf()
    {
        string file = Path.Combine(directory.Path, "client.properties");
        File.WriteAllBytes(file, [0xEF, 0xBB, 0xBF, .. "security.protocol=SASL_SSL\r\nclient.id=\r\n"u8]);

        KafkaClientProperties properties = KafkaClientProperties.Load(file, []);

        properties.Values["security.protocol"].ShouldBe("SASL_SSL");
        properties.Values["client.id"].ShouldBe("");
        properties.Values.Count.ShouldBe(2);
    }

    [Fact]
    public void ConfigurationKeepsSpacesAroundAValue()
    {
        KafkaClientProperties properties = KafkaClientProperties.Load(null, [new("sasl.password", " secret ")]);

        properties.Values["sasl.password"].ShouldBe(" secret ");
    }

    [Fact]
    public void RejectsADirectory()
    {
        InvalidDataException exception = Should.Throw<InvalidDataException>(() => KafkaClientProperties.Load(directory.Path, []));

        exception.Message.ShouldStartWith($"The Kafka properties file {directory.Path} is a directory.");
    }

    [Fact]
    public void RejectsAFileLargerThanTheLimit()
    {
        string file = Path.Combine(directory.Path, "weights.bin");
        File.WriteAllText(file, "# " + new string('x', KafkaClientProperties.MaxFileCharacters) + "\n");

        InvalidDataException exception = Should.Throw<InvalidDataException>(() => KafkaClientProperties.Load(file, []));

        exception.Message.ShouldBe($"The Kafka properties file {file} is larger than 1 MiB, so it is not a librdkafka properties file. Check the path.");
    }

    [Fact]
    public void ReadsAFileAtTheLimit()
    {
        string file = Path.Combine(directory.Path, "client.properties");
        string line = "client.id=a\n";
        File.WriteAllText(file, new string('#', KafkaClientProperties.MaxFileCharacters - line.Length - 1) + "\n" + line);

        KafkaClientProperties.Load(file, []).Values["client.id"].ShouldBe("a");
    }

    [Fact]
    public void OptionsReadTheFileOnce()
    {
        string file = Path.Combine(directory.Path, "client.properties");
        File.WriteAllText(file, "client.id=once\n");
        var options = new KafkaOptions { ConfigFile = file };

        KafkaClientProperties first = options.Load();
        File.Delete(file);
        KafkaClientProperties second = options.Load();

        second.ShouldBeSameAs(first);
        second.Values["client.id"].ShouldBe("once");
    }

    [Fact]
    public void AMissingFileNamesItsPath()
    {
        string file = Path.Combine(directory.Path, "absent.properties");

        InvalidDataException exception = Should.Throw<InvalidDataException>(() => KafkaClientProperties.Load(file, []));

        exception.Message.ShouldStartWith($"The Kafka properties file {file} cannot be read:");
    }

    [Fact]
    public void ApplyToOverridesClientSettings()
    {
        KafkaClientProperties properties = KafkaClientProperties.Load(null, [new("socket.timeout.ms", "45000"), new("client.id", "learner-a")]);

        ConsumerConfig config = properties.ApplyTo(new ConsumerConfig { BootstrapServers = "127.0.0.1:9092", SocketTimeoutMs = 10_000 });

        config.SocketTimeoutMs.ShouldBe(45_000);
        config.ClientId.ShouldBe("learner-a");
        config.BootstrapServers.ShouldBe("127.0.0.1:9092");
    }

    [Fact]
    public void ValidateAcceptsASaslConfiguration()
    {
        KafkaClientProperties properties = KafkaClientProperties.Load(null,
        [
            new("security.protocol", "SASL_PLAINTEXT"),
            new("sasl.mechanism", "SCRAM-SHA-256"),
            new("sasl.username", "learner"),
            new("sasl.password", "secret"),
            new("fetch.min.bytes", "1"),
        ]);

        Should.NotThrow(properties.Validate);
    }

    [Theory]
    [InlineData("sasl.mechanisms.typo", "PLAIN", "sasl.mechanisms.typo")]
    [InlineData("socket.timeout.ms", "soon", "socket.timeout.ms")]
    [InlineData("security.protocol", "TLS", "security.protocol")]
    public void ValidateReportsWhatLibrdkafkaRejects(string name, string value, string named)
    {
        KafkaClientProperties properties = KafkaClientProperties.Load(null, [new(name, value)]);

        InvalidDataException exception = Should.Throw<InvalidDataException>(properties.Validate);

        exception.Message.ShouldStartWith("librdkafka rejected a property from Kafka:Properties: ");
        exception.Message.ShouldContain(named);
    }

    [Fact]
    public void ValidateReportsAMissingCertificateFile()
    {
        string missing = Path.Combine(directory.Path, "absent-ca.pem");
        KafkaClientProperties properties = KafkaClientProperties.Load(null, [new("security.protocol", "SSL"), new("ssl.ca.location", missing)]);

        InvalidDataException exception = Should.Throw<InvalidDataException>(properties.Validate);

        exception.Message.ShouldContain("ssl.ca.location");
    }
}
