using System.Buffers.Binary;
using System.Text;
using ContinualServe.Learner.Data;

namespace ContinualServe.Learner.Ingestion;

/// <summary>
/// The compact binary record format of the training stream, about a third of the JSON record's size for Fashion-MNIST images.
/// All integers are little-endian:
/// <list type="table">
/// <item><term>bytes 0-3</term><description>the magic 0x00 'C' 'S' 'E'. No JSON text starts with 0x00, so a reader tells the formats apart by the first byte.</description></item>
/// <item><term>byte 4</term><description>the format version, 1.</description></item>
/// <item><term>byte 5</term><description>the feature encoding: 1 for one unsigned byte per feature (pixels 0 to 255), 2 for a 32-bit float per feature.</description></item>
/// <item><term>bytes 6-17</term><description>task, label and feature count, each a 32-bit signed integer.</description></item>
/// <item><term>bytes 18-19</term><description>the length of the example id in UTF-8 bytes, a 16-bit unsigned integer.</description></item>
/// <item><term>then</term><description>the id in UTF-8, then the features, and nothing after them.</description></item>
/// </list>
/// </summary>
public static class BinaryExampleRecord
{
    public const byte FormatVersion = 1;
    public const byte BytesEncoding = 1;
    public const byte FloatEncoding = 2;
    public const int HeaderBytes = 20;

    /// <summary>The longest id in UTF-8 bytes, the largest value of the 16-bit length field.</summary>
    public const int MaxIdBytes = ushort.MaxValue;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Returns true when <paramref name="record"/> starts with the binary format's magic.</summary>
    public static bool HasMagic(ReadOnlySpan<byte> record) => record.StartsWith("\0CSE"u8);

    /// <summary>Encodes an example whose features are bytes, one byte per feature.</summary>
    /// <exception cref="ArgumentException">The id is empty or longer than <see cref="MaxIdBytes"/> in UTF-8.</exception>
    public static byte[] Encode(string id, int task, int label, ReadOnlySpan<byte> pixels)
    {
        byte[] record = Allocate(id, task, label, pixels.Length, BytesEncoding, pixels.Length, out int offset);
        pixels.CopyTo(record.AsSpan(offset));
        return record;
    }

    /// <summary>
    /// Encodes an example with any finite features: one byte per feature when every feature is a whole number from 0 to
    /// 255, otherwise a 32-bit float per feature. Both read back to equal values (a negative zero reads back as 0).
    /// </summary>
    /// <exception cref="ArgumentException">A feature is not finite, or the id is empty or too long.</exception>
    public static byte[] Encode(string id, int task, int label, ReadOnlySpan<float> features)
    {
        bool allBytes = true;
        foreach (float feature in features)
        {
            if (!float.IsFinite(feature))
            {
                throw new ArgumentException($"Feature value {feature} of example '{id}' is not finite.", nameof(features));
            }

            allBytes &= feature is >= 0 and <= 255 && feature == MathF.Truncate(feature);
        }

        if (allBytes)
        {
            byte[] compact = Allocate(id, task, label, features.Length, BytesEncoding, features.Length, out int start);
            for (int index = 0; index < features.Length; index++)
            {
                compact[start + index] = (byte)features[index];
            }

            return compact;
        }

        byte[] record = Allocate(id, task, label, features.Length, FloatEncoding, features.Length * sizeof(float), out int offset);
        for (int index = 0; index < features.Length; index++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(record.AsSpan(offset + (index * sizeof(float))), features[index]);
        }

        return record;
    }

    /// <summary>
    /// Reads and validates a binary record for a model with <paramref name="featureCount"/> features and
    /// <paramref name="classCount"/> classes. On failure <paramref name="error"/> names the field and the problem.
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<byte> record, int featureCount, int classCount, out LabeledExample? example, out string error)
    {
        example = null;
        error = ReadHeader(record, featureCount, classCount, out int task, out int label, out byte encoding, out int idLength);
        if (error.Length > 0)
        {
            return false;
        }

        int featureBytes = encoding == BytesEncoding ? featureCount : featureCount * sizeof(float);
        long expected = (long)HeaderBytes + idLength + featureBytes;
        if (record.Length != expected)
        {
            error = $"binary record is {record.Length} bytes, but its header describes {expected} (an id of {idLength} bytes and {featureCount} features)";
            return false;
        }

        string id;
        try
        {
            id = StrictUtf8.GetString(record.Slice(HeaderBytes, idLength));
        }
        catch (DecoderFallbackException)
        {
            error = "field 'id' is not valid UTF-8";
            return false;
        }

        ReadOnlySpan<byte> data = record[(HeaderBytes + idLength)..];
        var features = new float[featureCount];
        if (encoding == BytesEncoding)
        {
            for (int index = 0; index < featureCount; index++)
            {
                features[index] = data[index];
            }
        }
        else
        {
            for (int index = 0; index < featureCount; index++)
            {
                float value = BinaryPrimitives.ReadSingleLittleEndian(data[(index * sizeof(float))..]);
                if (!float.IsFinite(value))
                {
                    error = $"field 'features' item {index} is not finite";
                    return false;
                }

                features[index] = value;
            }
        }

        example = new LabeledExample(id, task, label, features);
        return true;
    }

    // Checks everything but the total length and the id's bytes, and returns the first problem or an empty string.
    private static string ReadHeader(ReadOnlySpan<byte> record, int featureCount, int classCount, out int task, out int label, out byte encoding, out int idLength)
    {
        task = label = idLength = 0;
        encoding = 0;
        if (!HasMagic(record))
        {
            return "binary record does not start with the magic 0x00 'C' 'S' 'E'";
        }

        if (record.Length < HeaderBytes)
        {
            return $"binary record is {record.Length} bytes, shorter than its {HeaderBytes}-byte header";
        }

        if (record[4] != FormatVersion)
        {
            return $"binary record has format version {record[4]}; this learner reads version {FormatVersion}";
        }

        encoding = record[5];
        if (encoding is not (BytesEncoding or FloatEncoding))
        {
            return $"binary record has feature encoding {encoding}; expected {BytesEncoding} (bytes) or {FloatEncoding} (32-bit floats)";
        }

        task = BinaryPrimitives.ReadInt32LittleEndian(record[6..]);
        label = BinaryPrimitives.ReadInt32LittleEndian(record[10..]);
        int count = BinaryPrimitives.ReadInt32LittleEndian(record[14..]);
        idLength = BinaryPrimitives.ReadUInt16LittleEndian(record[18..]);
        if (idLength == 0)
        {
            return "field 'id' is empty";
        }

        if (task < 1)
        {
            return $"field 'task' is {task}; expected a positive integer";
        }

        if (label < 0 || label >= classCount)
        {
            return $"field 'label' is {label}; expected 0..{classCount - 1}";
        }

        return count == featureCount ? "" : $"field 'features' has {count} values; expected {featureCount}";
    }

    private static byte[] Allocate(string id, int task, int label, int featureCount, byte encoding, int featureBytes, out int featureOffset)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        int idLength = StrictUtf8.GetByteCount(id);
        if (idLength > MaxIdBytes)
        {
            throw new ArgumentException($"Example id of {idLength} UTF-8 bytes is longer than the binary format's {MaxIdBytes}.", nameof(id));
        }

        var record = new byte[HeaderBytes + idLength + featureBytes];
        "\0CSE"u8.CopyTo(record);
        record[4] = FormatVersion;
        record[5] = encoding;
        BinaryPrimitives.WriteInt32LittleEndian(record.AsSpan(6), task);
        BinaryPrimitives.WriteInt32LittleEndian(record.AsSpan(10), label);
        BinaryPrimitives.WriteInt32LittleEndian(record.AsSpan(14), featureCount);
        BinaryPrimitives.WriteUInt16LittleEndian(record.AsSpan(18), (ushort)idLength);
        StrictUtf8.GetBytes(id, record.AsSpan(HeaderBytes));
        featureOffset = HeaderBytes + idLength;
        return record;
    }
}
