namespace ContinualServe.Learner.Kafka;

/// <summary>
/// Client settings shared by every Kafka client of a role (the learner's consumer, dead-letter producer and broker
/// checks, the version publisher, a replica's version subscriber): the properties a production cluster needs beyond
/// its address. See <see cref="KafkaClientProperties"/> for how they combine and which names are rejected.
/// </summary>
public sealed class KafkaOptions
{
    public const string SectionName = "Kafka";

    /// <summary>
    /// Path of a librdkafka properties file, one <c>name=value</c> a line, for example mounted from a Kubernetes Secret
    /// because it contains <c>sasl.password</c>. Empty: no file.
    /// </summary>
    public string ConfigFile { get; set; } = "";

    /// <summary>
    /// librdkafka properties by name, for example <c>Kafka:Properties:security.protocol=SASL_SSL</c>. They replace the
    /// file's value of a name they share.
    /// </summary>
    public Dictionary<string, string> Properties { get; set; } = new(StringComparer.Ordinal);

    private KafkaClientProperties? loaded;

    /// <summary>
    /// Reads the file and combines it with <see cref="Properties"/>. Only the first successful call reads the file, and
    /// later calls return its result. Start validation and the clients both load the properties, and the file may be a
    /// pipe that can be read only once, such as /dev/stdin or a shell's process substitution.
    /// </summary>
    /// <exception cref="InvalidDataException">The file cannot be read, or a line or a name is invalid.</exception>
    public KafkaClientProperties Load() => loaded ??= KafkaClientProperties.Load(ConfigFile, Properties);
}
