using System.Buffers;
using System.Text.Json;
using System.Text.Unicode;
using ContinualServe.Server.Hosting;

namespace ContinualServe.Server.Inference;

/// <summary>
/// Reader of the V1 predict body, <c>{"instances": [[f0, f1, ...], ...]}</c>: each instance is one flat row of the
/// model's features, as JSON numbers. Every error names the instance and the value it found invalid.
/// </summary>
public sealed class PredictRequestReader
{
    private readonly int featureCount;
    private readonly int maxBatchSize;

    public PredictRequestReader(int featureCount, int maxBatchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(featureCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchSize, 1);
        this.featureCount = featureCount;
        this.maxBatchSize = maxBatchSize;
    }

    /// <summary>
    /// Parses <paramref name="body"/> into row-major features in an array rented from <see cref="ArrayPool{T}.Shared"/>,
    /// which the inference batcher returns. Returns false with the 400 error otherwise.
    /// </summary>
    public bool TryRead(ReadOnlySpan<byte> body, out float[] features, out int rows, out InferenceError? error)
    {
        features = [];
        rows = 0;

        // Utf8JsonReader does not validate UTF-8 inside strings, and GetRawText throws on such bytes when it builds an error message.
        if (!Utf8.IsValid(body))
        {
            error = new InferenceError("The request body is not valid UTF-8.", "body", "a UTF-8 JSON object");
            return false;
        }

        if (JsonBodyCheck.IsEmpty(body))
        {
            error = new InferenceError("The request body is empty. Send a JSON object with an 'instances' array.", "body", "{\"instances\": [[...], ...]}");
            return false;
        }

        var reader = new Utf8JsonReader(body);
        JsonDocument document;
        try
        {
            document = JsonDocument.ParseValue(ref reader);
        }
        catch (JsonException exception)
        {
            error = new InferenceError($"The request body is not valid JSON: {exception.Message}", "body", "{\"instances\": [[...], ...]}");
            return false;
        }

        using (document)
        {
            if (HasTrailingContent(ref reader))
            {
                error = new InferenceError("The request body has content after the JSON object.", "body", "exactly one JSON object");
                return false;
            }

            error = JsonBodyCheck.FindDuplicateProperty(document.RootElement);
            if (error is not null)
            {
                return false;
            }

            return TryReadInstances(document.RootElement, out features, out rows, out error);
        }
    }

    // ParseValue stops after the first value, so a second value or stray text after it must be rejected here.
    private static bool HasTrailingContent(ref Utf8JsonReader reader)
    {
        try
        {
            return reader.Read();
        }
        catch (JsonException)
        {
            return true;
        }
    }

    private bool TryReadInstances(JsonElement root, out float[] features, out int rows, out InferenceError? error)
    {
        features = [];
        rows = 0;
        string expectedRows = $"an array of 1 to {maxBatchSize} instances";
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("instances", out JsonElement instances) || instances.ValueKind != JsonValueKind.Array)
        {
            error = new InferenceError("The request body has no \"instances\" array.", "instances", expectedRows);
            return false;
        }

        int count = instances.GetArrayLength();
        if (count < 1 || count > maxBatchSize)
        {
            error = new InferenceError($"The request has {count} instances; the server accepts 1 to {maxBatchSize} ({ServerOptions.MaxBatchSizeKey}).", "instances", expectedRows);
            return false;
        }

        float[] values = ArrayPool<float>.Shared.Rent(count * featureCount);
        int row = 0;
        foreach (JsonElement instance in instances.EnumerateArray())
        {
            if (!TryReadRow(instance, row, values.AsSpan(row * featureCount, featureCount), out error))
            {
                ArrayPool<float>.Shared.Return(values);
                return false;
            }

            row++;
        }

        features = values;
        rows = count;
        error = null;
        return true;
    }

    private bool TryReadRow(JsonElement instance, int row, Span<float> destination, out InferenceError? error)
    {
        string field = $"instances[{row}]";
        if (instance.ValueKind != JsonValueKind.Array || instance.GetArrayLength() != featureCount)
        {
            string found = instance.ValueKind == JsonValueKind.Array ? $"an array of {instance.GetArrayLength()} values" : $"a JSON {instance.ValueKind.ToString().ToLowerInvariant()}";
            error = new InferenceError($"Instance {row} is {found}.", field, $"a flat array of {featureCount} numbers");
            return false;
        }

        int column = 0;
        foreach (JsonElement value in instance.EnumerateArray())
        {
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out double number) || !float.IsFinite((float)number))
            {
                error = new InferenceError($"Value {column} of instance {row} is not a finite FP32 number: {ClientText.Truncate(value.GetRawText())}.", $"{field}[{column}]", "a finite number");
                return false;
            }

            destination[column++] = (float)number;
        }

        error = null;
        return true;
    }
}
