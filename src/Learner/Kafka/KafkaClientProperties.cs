using System.Globalization;
using Confluent.Kafka;
using ContinualServe.Model;

namespace ContinualServe.Learner.Kafka;

/// <summary>
/// librdkafka properties that every Kafka client of the process takes on top of its own settings: the security
/// protocol, SASL and TLS settings of a production cluster, a client id, the timeouts of a distant cluster. They come
/// from a properties file (one <c>name=value</c> a line) and from configuration, and configuration wins. A property
/// that a client also sets for itself, such as <c>socket.timeout.ms</c>, takes the value given here. The properties
/// that ContinualServe's delivery guarantees depend on are rejected (<see cref="ReservedNames"/>).
/// </summary>
public sealed class KafkaClientProperties
{
    /// <summary>
    /// Properties set by ContinualServe's own settings or fixed by its delivery guarantees, each with the setting
    /// that governs it. Aliases that librdkafka accepts for them are listed too, and so are the Confluent.Kafka .NET
    /// client's own dotnet.* properties that change how results reach ContinualServe. A name is also reserved with the
    /// prefix "topic.", which librdkafka strips to set a topic-level property such as acks or auto.offset.reset.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> ReservedNames = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["bootstrap.servers"] = "--bootstrap-servers",
        ["metadata.broker.list"] = "--bootstrap-servers",
        ["group.id"] = "--group",
        ["enable.auto.commit"] = "offsets are committed only after a version and its checkpoint are saved",
        ["enable.auto.offset.store"] = "offsets are stored only after an example's effect is saved",
        ["auto.offset.reset"] = "the learner handles positions outside the partition itself",
        ["enable.partition.eof"] = "the learner uses the end of a partition to start a round",
        ["acks"] = "records and announcements are written to all in-sync replicas",
        ["request.required.acks"] = "records and announcements are written to all in-sync replicas",
        ["enable.idempotence"] = "each client chooses its own delivery mode",
        ["session.timeout.ms"] = "Learner:SessionTimeout",
        ["heartbeat.interval.ms"] = "Learner:SessionTimeout, of which it is a sixth",
        ["message.max.bytes"] = "the record size limits of produce and the dead-letter topic",
        ["partition.assignment.strategy"] = "the learner's rebalance handling takes each assignment as the whole set of partitions",
        ["group.protocol"] = "the learner's rebalance handling takes each assignment as the whole set of partitions",
        ["dotnet.producer.enable.delivery.reports"] = "records, dead letters and announcements wait for their delivery reports",
        ["dotnet.producer.enable.background.poll"] = "records, dead letters and announcements wait for their delivery reports",
        ["dotnet.producer.delivery.report.fields"] = "records, dead letters and announcements wait for their delivery reports",
        ["dotnet.consumer.consume.result.fields"] = "the learner and its dead-letter topic read each record's key and value",
    };

    /// <summary>
    /// Largest properties file read, in characters (1 MiB of ASCII). A client configuration is a few dozen lines, so a
    /// larger file is almost certainly the wrong path, and reading all of it would only delay the error.
    /// </summary>
    public const int MaxFileCharacters = 1024 * 1024;

    private const string TopicPrefix = "topic.";

    private readonly Dictionary<string, string> values;

    private KafkaClientProperties(Dictionary<string, string> values, string source)
    {
        this.values = values;
        Source = source;
    }

    /// <summary>No extra properties: each client keeps its own settings.</summary>
    public static KafkaClientProperties None { get; } = new(new Dictionary<string, string>(StringComparer.Ordinal), "no source");

    /// <summary>The properties by name.</summary>
    public IReadOnlyDictionary<string, string> Values => values;

    /// <summary>Where the properties come from: the file, Kafka:Properties, or both, for messages and the start log.</summary>
    public string Source { get; }

    /// <summary>
    /// Reads <paramref name="configFile"/> (when given) and adds <paramref name="overrides"/>, which replace the file's
    /// value of a name they share. Checks names and layout only, and <see cref="Validate"/> has librdkafka check the values.
    /// </summary>
    /// <exception cref="InvalidDataException">
    /// The file is missing, unreadable, a directory or larger than 1 MiB, a line is not <c>name=value</c>, a name repeats
    /// in the file, or a name is reserved or has upper-case letters.
    /// </exception>
    public static KafkaClientProperties Load(string? configFile, IEnumerable<KeyValuePair<string, string>> overrides)
    {
        ArgumentNullException.ThrowIfNull(overrides);
        bool hasFile = !string.IsNullOrWhiteSpace(configFile);
        Dictionary<string, string> values = hasFile
            ? Parse(ReadFile(configFile!), configFile!)
            : new Dictionary<string, string>(StringComparer.Ordinal);
        bool hasOverrides = false;
        foreach ((string name, string value) in overrides)
        {
            CheckName(name.Trim(), $"Kafka:Properties:{name}");
            values[name.Trim()] = value;
            hasOverrides = true;
        }

        string source = (hasFile, hasOverrides) switch
        {
            (true, true) => configFile + " and Kafka:Properties",
            (true, false) => configFile!,
            _ => "Kafka:Properties",
        };
        return values.Count == 0 ? None : new KafkaClientProperties(values, source);
    }

    /// <summary>
    /// Parses the text of a properties file: one <c>name=value</c> a line, with space around either trimmed, the value
    /// running to the end of the line (it may contain '='), and blank lines and lines that start with '#' or '!' skipped.
    /// A value that starts or ends with a space, such as some passwords, therefore belongs in Kafka:Properties, which
    /// keeps values as given.
    /// </summary>
    /// <exception cref="InvalidDataException">
    /// A line has no '=' or no name, a name repeats, is reserved, or has upper-case letters.
    /// </exception>
    public static Dictionary<string, string> Parse(string text, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        string[] lines = text.Split('\n');
        for (int index = 0; index < lines.Length; index++)
        {
            string line = lines[index].Trim();
            string where = string.Create(CultureInfo.InvariantCulture, $"{source}, line {index + 1}");
            if (line.Length == 0 || line[0] == '#' || line[0] == '!')
            {
                continue;
            }

            int separator = line.IndexOf('=', StringComparison.Ordinal);
            string name = separator < 0 ? "" : line[..separator].TrimEnd();
            if (name.Length == 0)
            {
                throw new InvalidDataException($"{where}: expected a librdkafka property as name=value, for example security.protocol=SASL_SSL.");
            }

            CheckName(name, where);
            if (!values.TryAdd(name, line[(separator + 1)..].TrimStart()))
            {
                throw new InvalidDataException($"{where}: '{name}' is set twice in the file.");
            }
        }

        return values;
    }

    /// <summary>Sets every property on <paramref name="config"/> and returns it.</summary>
    public TConfig ApplyTo<TConfig>(TConfig config)
        where TConfig : ClientConfig
    {
        ArgumentNullException.ThrowIfNull(config);
        foreach ((string name, string value) in values)
        {
            config.Set(name, value);
        }

        return config;
    }

    /// <summary>
    /// Builds a producer with the properties and no broker to reach, so that librdkafka checks every name and value
    /// before any client of the process needs them. It rejects an unknown name, an invalid value and a missing certificate file.
    /// </summary>
    /// <exception cref="InvalidDataException">librdkafka rejected a property; the message is librdkafka's.</exception>
    public void Validate()
    {
        if (values.Count == 0)
        {
            return;
        }

        try
        {
            // Without bootstrap.servers the producer connects nowhere. Consumer-only properties draw a warning from
            // librdkafka, which the empty log handler drops, and no error.
            using IProducer<Null, Null> producer = new ProducerBuilder<Null, Null>(ApplyTo(new ProducerConfig()))
                .SetLogHandler((_, _) => { })
                .SetErrorHandler((_, _) => { })
                .Build();
        }
        catch (Exception exception) when (exception is ArgumentException or InvalidOperationException or KafkaException)
        {
            throw new InvalidDataException($"librdkafka rejected a property from {Source}: {exception.Message}", exception);
        }
    }

    private static void CheckName(string name, string where)
    {
        // librdkafka compares names with their letter case, and all its names are lower case, so Group.Id would
        // only be reported as unknown. The reserved check ignores case to name the setting that governs it.
        string lowerCase = name.ToLowerInvariant();
        string unprefixed = lowerCase.StartsWith(TopicPrefix, StringComparison.Ordinal) ? lowerCase[TopicPrefix.Length..] : lowerCase;
        if (ReservedNames.TryGetValue(unprefixed, out string? governedBy))
        {
            throw new InvalidDataException(
                $"{where}: '{name}' cannot be set here, because ContinualServe sets it ({governedBy}).");
        }

        if (!string.Equals(name, lowerCase, StringComparison.Ordinal))
        {
            throw new InvalidDataException(
                $"{where}: '{name}' is not a librdkafka property, because librdkafka property names are lower case. Write '{lowerCase}'.");
        }
    }

    private static string ReadFile(string path)
    {
        // On Linux, opening a directory fails with "Access to the path is denied", which points at permissions.
        if (Directory.Exists(path))
        {
            throw new InvalidDataException(
                $"The Kafka properties file {path} is a directory. Name the file inside it, for example {Path.Combine(path, "client.properties")}.");
        }

        // A bounded read, because the file may be a pipe such as /dev/stdin, whose length is unknown.
        string? text;
        try
        {
            text = BoundedTextFile.ReadAtMost(path, MaxFileCharacters);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"The Kafka properties file {path} cannot be read: {exception.Message}", exception);
        }

        return text ?? throw new InvalidDataException(
            $"The Kafka properties file {path} is larger than 1 MiB, so it is not a librdkafka properties file. Check the path.");
    }
}
