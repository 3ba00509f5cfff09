using System.Security.Cryptography;
using Confluent.Kafka;

namespace ContinualServe.Learner.Checkpoints;

/// <summary>
/// Identity of one Kafka record: its position, key and timestamp. A learner checkpoint stores the identity of the
/// record before each of its offsets, so that a restart can tell whether the topic still has that record there.
/// </summary>
/// <param name="Topic">Topic of the record.</param>
/// <param name="Partition">Partition of the record.</param>
/// <param name="Offset">Offset of the record, one below the checkpoint's offset on its partition.</param>
/// <param name="KeySha256">Lower-case hex SHA-256 of the record key, or null for a record without a key.</param>
/// <param name="TimestampType">Kafka timestamp type: CreateTime, LogAppendTime or NotAvailable.</param>
/// <param name="Timestamp">Kafka timestamp in milliseconds since the Unix epoch.</param>
public sealed record RecordIdentity(string Topic, int Partition, long Offset, string? KeySha256, string TimestampType, long Timestamp)
{
    /// <summary>Builds the identity of the record at <paramref name="offset"/> with <paramref name="key"/> and <paramref name="timestamp"/>.</summary>
    public static RecordIdentity Of(TopicPartition partition, long offset, byte[]? key, Timestamp timestamp)
    {
        ArgumentNullException.ThrowIfNull(partition);
        string? keySha256 = key is null ? null : Convert.ToHexStringLower(SHA256.HashData(key));
        return new RecordIdentity(partition.Topic, partition.Partition.Value, offset, keySha256, timestamp.Type.ToString(), timestamp.UnixTimestampMs);
    }

    /// <summary>Returns true when <paramref name="other"/> has the same offset, key and timestamp.</summary>
    public bool Matches(RecordIdentity other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Offset == other.Offset
            && string.Equals(KeySha256, other.KeySha256, StringComparison.Ordinal)
            && string.Equals(TimestampType, other.TimestampType, StringComparison.Ordinal)
            && Timestamp == other.Timestamp;
    }

    /// <summary>Describes the record for logs and errors, with the timestamp in UTC.</summary>
    public string Describe()
    {
        string key = KeySha256 is null ? "no key" : $"key SHA-256 {KeySha256}";
        string time = DateTimeOffset.FromUnixTimeMilliseconds(Timestamp).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);
        return $"offset {Offset}, {key}, {TimestampType} {time}";
    }
}
