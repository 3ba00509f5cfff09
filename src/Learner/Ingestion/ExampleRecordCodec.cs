using System.Buffers;
using System.Globalization;
using System.Text.Json;
using ContinualServe.Learner.Data;

namespace ContinualServe.Learner.Ingestion;

/// <summary>
/// Reads and writes the JSON record format of the training stream:
/// <c>{"id":"train-42","task":1,"label":0,"features":[0,12,255,...]}</c>, keyed by the example id.
/// <see cref="TryDecode"/> also reads <see cref="BinaryExampleRecord"/>'s compact format, recognized by its first byte.
/// Reading validates every field, so an invalid record yields a reason instead of an exception.
/// </summary>
public sealed class ExampleRecordCodec
{
    public ExampleRecordCodec(int featureCount, int classCount, int maxRecordBytes = 1 << 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(featureCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(classCount, 2);
        FeatureCount = featureCount;
        ClassCount = classCount;
        MaxRecordBytes = maxRecordBytes;
    }

    public int FeatureCount { get; }

    public int ClassCount { get; }

    public int MaxRecordBytes { get; }

    /// <summary>Largest accepted task number; no limit by default. The learner sets Learner:MaxTask.</summary>
    public int MaxTask { get; init; } = int.MaxValue;

    /// <summary>Largest accepted absolute value of a feature; no limit by default. The learner sets Learner:MaxAbsFeatureValue.</summary>
    public float MaxAbsFeatureValue { get; init; } = float.MaxValue;

    public static byte[] Encode(string id, int task, int label, ReadOnlySpan<byte> pixels)
    {
        var buffer = new ArrayBufferWriter<byte>(16 + (pixels.Length * 4));
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteStart(writer, id, task, label);
            foreach (byte pixel in pixels)
            {
                writer.WriteNumberValue(pixel);
            }

            WriteEnd(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Encodes a record with any finite features. Whole numbers up to 2^24 are written without a fraction, so
    /// pixel-like records keep the short form that the decoder reads fastest. Other values use the shortest text
    /// that reads back to the same float.
    /// </summary>
    public static byte[] Encode(string id, int task, int label, ReadOnlySpan<float> features)
    {
        var buffer = new ArrayBufferWriter<byte>(16 + (features.Length * 4));
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteStart(writer, id, task, label);
            foreach (float feature in features)
            {
                if (!float.IsFinite(feature))
                {
                    throw new ArgumentException($"Feature value {feature} of example '{id}' is not finite.", nameof(features));
                }

                if (MathF.Abs(feature) <= 16_777_216f && feature == MathF.Truncate(feature))
                {
                    writer.WriteNumberValue((int)feature);
                }
                else
                {
                    writer.WriteNumberValue(feature);
                }
            }

            WriteEnd(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }

    // Writes the record's opening brace, id, task and label, and opens the features array.
    private static void WriteStart(Utf8JsonWriter writer, string id, int task, int label)
    {
        writer.WriteStartObject();
        writer.WriteString("id", id);
        writer.WriteNumber("task", task);
        writer.WriteNumber("label", label);
        writer.WriteStartArray("features");
    }

    private static void WriteEnd(Utf8JsonWriter writer)
    {
        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    /// <summary>
    /// Parses and validates one record, JSON or binary. On failure <paramref name="error"/> names the field and the problem.
    /// </summary>
    public bool TryDecode(ReadOnlySpan<byte> record, out LabeledExample? example, out string error)
    {
        if (!BinaryExampleRecord.HasMagic(record) || record.Length > MaxRecordBytes)
        {
            return TryDecodeJson(record, out example, out error);
        }

        return BinaryExampleRecord.TryDecode(record, FeatureCount, ClassCount, out example, out error) && WithinLimits(ref example, out error);
    }

    /// <summary>Parses and validates one JSON record. On failure <paramref name="error"/> names the field and the problem.</summary>
    public bool TryDecodeJson(ReadOnlySpan<byte> json, out LabeledExample? example, out string error)
    {
        example = null;
        if (json.Length > MaxRecordBytes)
        {
            error = $"record is {json.Length} bytes; the limit is {MaxRecordBytes}";
            return false;
        }

        if (TryReadCanonical(json, out example))
        {
            return WithinLimits(ref example, out error);
        }

        try
        {
            return TryRead(json, out example, out error) && WithinLimits(ref example, out error);
        }
        catch (JsonException exception)
        {
            error = $"malformed JSON: {exception.Message}";
            return false;
        }
        catch (InvalidOperationException exception)
        {
            // GetString throws this for a \u escape of half a surrogate pair, which passes the reader's syntax check.
            error = $"malformed JSON: {exception.Message}";
            return false;
        }
    }

    /// <summary>
    /// Reads a record in the shape <see cref="Encode"/> writes without <see cref="Utf8JsonReader"/>: about 8 us
    /// for 784 features against about 30 us for the reader (2-core development machine, .NET 10). Any
    /// whitespace and field order is read here. Escapes, non-ASCII ids, unknown or repeated fields, features
    /// that are not integers of 1 to 3 digits, and every invalid record return false and go to
    /// <see cref="TryRead"/>, so errors and unusual input are handled in one place.
    /// </summary>
    private bool TryReadCanonical(ReadOnlySpan<byte> json, out LabeledExample? example)
    {
        example = null;
        var scanner = new CanonicalScanner(json);
        if (!scanner.Skip((byte)'{'))
        {
            return false;
        }

        string? id = null;
        int task = 0;
        int label = -1;
        float[]? features = null;
        bool hasTask = false;
        bool hasLabel = false;
        do
        {
            if (!scanner.TryReadPlainString(out ReadOnlySpan<byte> name) || !scanner.Skip((byte)':'))
            {
                return false;
            }

            if (name.SequenceEqual("id"u8) && id is null)
            {
                if (!scanner.TryReadPlainString(out ReadOnlySpan<byte> value) || value.IsEmpty)
                {
                    return false;
                }

                id = System.Text.Encoding.ASCII.GetString(value);
            }
            else if (name.SequenceEqual("task"u8) && !hasTask)
            {
                hasTask = scanner.TryReadInteger(out task);
                if (!hasTask)
                {
                    return false;
                }
            }
            else if (name.SequenceEqual("label"u8) && !hasLabel)
            {
                hasLabel = scanner.TryReadInteger(out label);
                if (!hasLabel)
                {
                    return false;
                }
            }
            else if (name.SequenceEqual("features"u8) && features is null)
            {
                features = new float[FeatureCount];
                if (!scanner.TryReadPixels(features))
                {
                    return false;
                }
            }
            else
            {
                return false;
            }
        }
        while (scanner.Skip((byte)','));

        if (!scanner.Skip((byte)'}') || !scanner.AtEnd() || id is null || features is null
            || !hasTask || task < 1 || !hasLabel || label < 0 || label >= ClassCount)
        {
            return false;
        }

        example = new LabeledExample(id, task, label, features);
        return true;
    }

    // Checks the limits that apply to every record format, and clears the example when one is broken.
    private bool WithinLimits(ref LabeledExample? example, out string error)
    {
        error = LimitError(example!);
        if (error.Length == 0)
        {
            return true;
        }

        example = null;
        return false;
    }

    /// <summary>
    /// Returns why <paramref name="id"/> is not a valid example id, as a phrase that follows the field's name, or null when
    /// it is valid. An id may not contain a control character (Unicode category Cc, such as a line feed or NUL) or the line
    /// and paragraph separators U+2028 and U+2029, because the training log and the logs write one id per line.
    /// </summary>
    public static string? IdError(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        for (int index = 0; index < id.Length; index++)
        {
            char character = id[index];
            if (char.IsControl(character) || character is '\u2028' or '\u2029')
            {
                return string.Create(
                    CultureInfo.InvariantCulture,
                    $"contains the character U+{(int)character:X4} at index {index}; ids may not contain control characters or line separators");
            }
        }

        return null;
    }

    /// <summary>
    /// Returns the dead-letter reason of an example that breaks <see cref="MaxTask"/>, <see cref="MaxAbsFeatureValue"/>
    /// or the id rules, or an empty string when it breaks none. Decoding applies the same check.
    /// </summary>
    public string LimitError(LabeledExample example)
    {
        ArgumentNullException.ThrowIfNull(example);
        if (IdError(example.Id) is { } idError)
        {
            return "field 'id' " + idError;
        }

        if (example.Task > MaxTask)
        {
            return $"field 'task' is {example.Task}; the maximum is {MaxTask} (Learner:MaxTask)";
        }

        float[] features = example.Features;
        for (int index = 0; index < features.Length; index++)
        {
            if (MathF.Abs(features[index]) > MaxAbsFeatureValue)
            {
                return string.Create(
                    CultureInfo.InvariantCulture,
                    $"field 'features' item {index} is {features[index]}; the maximum absolute value is {MaxAbsFeatureValue} (Learner:MaxAbsFeatureValue)");
            }
        }

        return string.Empty;
    }

    private bool TryRead(ReadOnlySpan<byte> json, out LabeledExample? example, out string error)
    {
        example = null;
        var reader = new Utf8JsonReader(json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            error = "record must be a JSON object";
            return false;
        }

        string? id = null;
        int? task = null;
        int? label = null;
        float[]? features = null;

        // Descriptions of a field's value that has the wrong JSON type, such as a label written as a string.
        string? idProblem = null;
        string? taskProblem = null;
        string? labelProblem = null;
        string? taskLimitError = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            string name = reader.GetString()!;
            reader.Read();
            switch (name)
            {
                // Skip moves past an array or object value, so that its contents are not read as fields of the record.
                case "id":
                    idProblem = reader.TokenType == JsonTokenType.String ? null : DescribeValue(ref reader);
                    id = idProblem is null ? reader.GetString() : null;
                    reader.Skip();
                    break;
                case "task":
                    task = ReadInteger(ref reader, out taskProblem);
                    taskLimitError = task is null ? WholeTaskAboveMaximumError(ref reader) : null;
                    reader.Skip();
                    break;
                case "label":
                    label = ReadInteger(ref reader, out labelProblem);
                    reader.Skip();
                    break;
                case "features":
                    if (!TryReadFeatures(ref reader, out features, out error))
                    {
                        return false;
                    }

                    break;
                default:
                    reader.Skip();
                    break;
            }
        }

        if (reader.Read())
        {
            error = "record has content after the JSON object";
            return false;
        }

        error = IdFieldError(id, idProblem) ?? taskLimitError ?? TaskFieldError(task, taskProblem) ?? LabelFieldError(label, labelProblem) ?? string.Empty;
        if (error.Length == 0 && features is null)
        {
            error = "field 'features' is missing";
        }

        if (error.Length > 0)
        {
            return false;
        }

        example = new LabeledExample(id!, task!.Value, label!.Value, features!);
        return true;
    }

    private static string? IdFieldError(string? id, string? problem)
    {
        if (problem is not null)
        {
            return $"field 'id' is {problem}; expected a non-empty string";
        }

        if (id is null)
        {
            return "field 'id' is missing; expected a non-empty string";
        }

        return id.Length == 0 ? "field 'id' is an empty string; expected a non-empty string" : null;
    }

    private static string? TaskFieldError(int? task, string? problem)
    {
        if (problem is not null)
        {
            return $"field 'task' is {problem}; expected a JSON integer of at least 1";
        }

        if (task is null)
        {
            return "field 'task' is missing; expected a JSON integer of at least 1";
        }

        return task < 1 ? $"field 'task' is {task}; expected a JSON integer of at least 1" : null;
    }

    // Returns the MaxTask error for a whole number beyond the 32-bit range, such as 99999999999 or 1e30, or null for
    // any other value. The value is shown as written, because it may not fit a long.
    private string? WholeTaskAboveMaximumError(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.Number || !reader.TryGetDouble(out double value))
        {
            return null;
        }

        if (value <= MaxTask || value != Math.Floor(value))
        {
            return null;
        }

        return $"field 'task' is {NumberText(ref reader)}; the maximum is {MaxTask} (Learner:MaxTask)";
    }

    private string? LabelFieldError(int? label, string? problem)
    {
        if (problem is not null)
        {
            return $"field 'label' is {problem}; expected a JSON integer from 0 to {ClassCount - 1}";
        }

        if (label is null)
        {
            return $"field 'label' is missing; expected a JSON integer from 0 to {ClassCount - 1}";
        }

        return label < 0 || label >= ClassCount ? $"field 'label' is {label}, outside 0..{ClassCount - 1}" : null;
    }

    // Returns the value of an integer field, or null and a description of a value that is not a JSON integer in the
    // 32-bit range.
    private static int? ReadInteger(ref Utf8JsonReader reader, out string? problem)
    {
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out int value))
        {
            problem = null;
            return value;
        }

        problem = DescribeValue(ref reader);
        return null;
    }

    // Describes the current value for an error message, such as: a JSON string ("1"). A string is cut to 40 characters
    // and JSON-escaped, so that the message stays one short line.
    private static string DescribeValue(ref Utf8JsonReader reader)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                string text = reader.GetString()!;
                string shown = text.Length <= 40 ? text : text[..40] + "...";
                return $"a JSON string (\"{JsonEncodedText.Encode(shown)}\")";
            case JsonTokenType.Number:
                return "the number " + NumberText(ref reader);
            case JsonTokenType.True:
            case JsonTokenType.False:
                return "a JSON boolean";
            case JsonTokenType.Null:
                return "null";
            case JsonTokenType.StartArray:
                return "a JSON array";
            case JsonTokenType.StartObject:
                return "a JSON object";
            default:
                return reader.TokenType.ToString();
        }
    }

    // Returns the current number as written in the record, cut to 40 characters like strings in DescribeValue.
    private static string NumberText(ref Utf8JsonReader reader)
    {
        string text = System.Text.Encoding.UTF8.GetString(reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan);
        return text.Length <= 40 ? text : text[..40] + "...";
    }

    // Pixels are small integers, and parsing up to three digits by hand is faster than TryGetSingle.
    // Any other number takes the general path.
    private static bool TryReadNumber(ref Utf8JsonReader reader, out float value)
    {
        ReadOnlySpan<byte> text = reader.HasValueSequence ? ReadOnlySpan<byte>.Empty : reader.ValueSpan;
        if (text.Length is > 0 and <= 3)
        {
            int number = 0;
            bool digits = true;
            foreach (byte character in text)
            {
                if (character is < (byte)'0' or > (byte)'9')
                {
                    digits = false;
                    break;
                }

                number = (number * 10) + (character - '0');
            }

            if (digits)
            {
                value = number;
                return true;
            }
        }

        return reader.TryGetSingle(out value);
    }

    // Checks a feature against MaxAbsFeatureValue on the parsed double, because rounding to FP32 can bring a value
    // just above the limit down to it (1000000.0001 becomes 1000000). JSON has no infinity, so a number too large
    // for FP32, such as 1e39, is finite in the record. It is above the limit, which is at most float.MaxValue.
    private string? FeatureLimitError(ref Utf8JsonReader reader, int index, float value)
    {
        if (float.IsFinite(value) && MathF.Abs(value) < MaxAbsFeatureValue)
        {
            return null;
        }

        reader.TryGetDouble(out double parsed);
        if (Math.Abs(parsed) <= MaxAbsFeatureValue)
        {
            return null;
        }

        string valueText = double.IsFinite(parsed) ? parsed.ToString(CultureInfo.InvariantCulture) : NumberText(ref reader);
        string rangeNote = Math.Abs(parsed) > float.MaxValue ? ", outside the FP32 range" : string.Empty;
        return string.Create(
            CultureInfo.InvariantCulture,
            $"field 'features' item {index} is {valueText}{rangeNote}; the maximum absolute value is {MaxAbsFeatureValue} (Learner:MaxAbsFeatureValue)");
    }

    private bool TryReadFeatures(ref Utf8JsonReader reader, out float[]? features, out string error)
    {
        features = null;
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            error = $"field 'features' is {DescribeValue(ref reader)}; expected an array of numbers";
            return false;
        }

        var values = new float[FeatureCount];
        int count = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !TryReadNumber(ref reader, out float value))
            {
                error = $"field 'features' item {count} is {DescribeValue(ref reader)}; expected a number";
                return false;
            }

            if (FeatureLimitError(ref reader, count, value) is { } limitError)
            {
                error = limitError;
                return false;
            }

            if (count == FeatureCount)
            {
                error = $"field 'features' has more than the expected {FeatureCount} values";
                return false;
            }

            values[count++] = value;
        }

        if (count != FeatureCount)
        {
            error = $"field 'features' has {count} values; expected {FeatureCount}";
            return false;
        }

        features = values;
        error = string.Empty;
        return true;
    }
}
