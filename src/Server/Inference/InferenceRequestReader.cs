using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using ContinualServe.Server.Hosting;

namespace ContinualServe.Server.Inference;

/// <summary>
/// Reads a KServe Open Inference Protocol v2 JSON request with one FP32 input tensor:
/// <c>{"id": "...", "inputs": [{"name": "input", "shape": [N, 784], "datatype": "FP32", "data": [...]}]}</c>.
/// The data may be flat or nested one array per row, matching the shape, or follow the JSON header as raw
/// little-endian FP32 (the protocol's binary data extension: the input's <c>parameters.binary_data_size</c> gives
/// its length).
/// The optional <c>outputs</c> array and <c>parameters.binary_data_output</c> choose the outputs of the response
/// and which of them are binary. Every failure names the field and the expected value. The returned data array
/// is rented from <see cref="ArrayPool{T}.Shared"/>; its new owner returns it.
/// </summary>
public sealed class InferenceRequestReader
{
    private readonly int featureCount;
    private readonly int maxBatchSize;

    public InferenceRequestReader(int featureCount, int maxBatchSize)
    {
        this.featureCount = featureCount;
        this.maxBatchSize = maxBatchSize;
    }

    public bool TryRead(ReadOnlySpan<byte> body, out InferenceInput input, out InferenceError? error) =>
        TryRead(body, ReadOnlySpan<byte>.Empty, out input, out error);

    /// <summary>Reads a JSON header followed by <paramref name="binary"/>, the raw tensor data of the binary extension.</summary>
    public bool TryRead(ReadOnlySpan<byte> json, ReadOnlySpan<byte> binary, out InferenceInput input, out InferenceError? error)
    {
        input = default;
        bool ok = false;
        try
        {
            ok = TryReadCore(json, binary, out input, out error);
            return ok;
        }
        catch (JsonException exception)
        {
            error = new InferenceError($"The request body is not valid JSON: {exception.Message}", "body", "a JSON object");
            return false;
        }
        catch (InvalidOperationException exception)
        {
            // Utf8JsonReader.GetString raises this for strings that are not valid UTF-8.
            error = new InferenceError($"The request body is not valid UTF-8 JSON: {exception.Message}", "body", "a UTF-8 JSON object");
            return false;
        }
        finally
        {
            if (!ok && input.Data is not null)
            {
                ArrayPool<float>.Shared.Return(input.Data);
                input = default;
            }
        }
    }

    private bool TryReadCore(ReadOnlySpan<byte> json, ReadOnlySpan<byte> binary, out InferenceInput input, out InferenceError? error)
    {
        input = default;
        if (JsonBodyCheck.IsEmpty(json))
        {
            string message = binary.IsEmpty
                ? "The request body is empty. Send a JSON object with an 'inputs' array."
                : $"The JSON header before the binary data is empty ({InferenceApi.BinaryHeaderName} is 0). Send a JSON object with an 'inputs' array first.";
            error = new InferenceError(message, "body", "a JSON object with an 'inputs' array");
            return false;
        }

        var reader = new Utf8JsonReader(json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            error = new InferenceError("The request body must be a JSON object.", "body", "a JSON object with an 'inputs' array");
            return false;
        }

        string? id = null;
        bool sawInputs = false;
        bool binaryDataOutput = false;
        List<(string Name, bool? Binary)>? outputs = null;
        var names = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            error = JsonBodyCheck.AddPropertyName(ref reader, names, string.Empty, out string field);
            if (error is not null)
            {
                return false;
            }

            if (reader.ValueTextEquals("id"u8))
            {
                reader.Read();
                if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.Null))
                {
                    error = new InferenceError("The request id must be a string.", "id", "a string");
                    return false;
                }

                id = reader.GetString();
            }
            else if (reader.ValueTextEquals("inputs"u8))
            {
                // A second "inputs" would replace the first, whose pooled data array then never went back.
                if (sawInputs)
                {
                    error = new InferenceError("'inputs' is given twice.", "inputs", "one inputs array");
                    return false;
                }

                reader.Read();
                if (!TryReadInputs(ref reader, binary, out input, out error))
                {
                    return false;
                }

                sawInputs = true;
            }
            else if (reader.ValueTextEquals("parameters"u8))
            {
                reader.Read();
                if (!RequestedOutputReader.TryReadParameters(ref reader, out binaryDataOutput, out error))
                {
                    return false;
                }
            }
            else if (reader.ValueTextEquals("outputs"u8))
            {
                reader.Read();
                if (!RequestedOutputReader.TryReadOutputs(ref reader, out outputs, out error))
                {
                    return false;
                }
            }
            else
            {
                reader.Read();
                error = JsonBodyCheck.SkipValue(ref reader, field);
                if (error is not null)
                {
                    return false;
                }
            }
        }

        if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
        {
            error = new InferenceError("The request body has content after the JSON object.", "body", "exactly one JSON object");
            return false;
        }

        if (!sawInputs)
        {
            error = new InferenceError("The request has no inputs.", "inputs", "an array with one FP32 tensor");
            return false;
        }

        if (!binary.IsEmpty && !input.FromBinary)
        {
            error = new InferenceError($"The request carries {binary.Length} bytes of binary data but no input declares parameters.binary_data_size.", "inputs[0].parameters.binary_data_size", $"{binary.Length}");
            return false;
        }

        input = input with { RequestId = id, Outputs = RequestedOutputReader.Resolve(outputs, binaryDataOutput) };
        error = null;
        return true;
    }

    private bool TryReadInputs(ref Utf8JsonReader reader, ReadOnlySpan<byte> binary, out InferenceInput input, out InferenceError? error)
    {
        input = default;
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            error = new InferenceError("'inputs' must be an array.", "inputs", "an array with one FP32 tensor");
            return false;
        }

        int count = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (count > 0)
            {
                error = new InferenceError("The model takes exactly one input tensor.", "inputs", "1 tensor");
                return false;
            }

            if (!TryReadTensor(ref reader, binary, out input, out error))
            {
                return false;
            }

            count++;
        }

        if (count == 0)
        {
            error = new InferenceError("'inputs' is empty.", "inputs", "1 tensor");
            return false;
        }

        error = null;
        return true;
    }

    private bool TryReadTensor(ref Utf8JsonReader reader, ReadOnlySpan<byte> binary, out InferenceInput input, out InferenceError? error)
    {
        input = default;
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            error = new InferenceError("Each input must be an object.", "inputs[0]", "an object with name, shape, datatype and data");
            return false;
        }

        string? name = null;
        string? datatype = null;
        List<long>? shape = null;
        float[]? data = null;
        int dataCount = 0;
        long? binarySize = null;
        var names = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            error = JsonBodyCheck.AddPropertyName(ref reader, names, "inputs[0]", out string field);
            if (error is not null)
            {
                input = FailedInput(data);
                return false;
            }

            if (reader.ValueTextEquals("name"u8))
            {
                reader.Read();
                name = ReadStringOrSkip(ref reader);
            }
            else if (reader.ValueTextEquals("datatype"u8))
            {
                reader.Read();
                datatype = ReadStringOrSkip(ref reader);
            }
            else if (reader.ValueTextEquals("shape"u8))
            {
                reader.Read();
                if (!TryReadShape(ref reader, out shape, out error))
                {
                    return false;
                }
            }
            else if (reader.ValueTextEquals("data"u8))
            {
                reader.Read();
                if (data is not null)
                {
                    error = new InferenceError("Input data is given twice.", "inputs[0].data", "one data array");
                    input = new InferenceInput("input", 0, data, null);
                    return false;
                }

                data = ArrayPool<float>.Shared.Rent(featureCount);
                bool read = TryReadData(ref reader, ref data, ref dataCount, out error);
                if (!read)
                {
                    input = new InferenceInput("input", 0, data, null);
                    return false;
                }
            }
            else if (reader.ValueTextEquals("parameters"u8))
            {
                reader.Read();
                if (!TryReadBinaryDataSize(ref reader, out binarySize, out error))
                {
                    if (data is not null)
                    {
                        input = new InferenceInput("input", 0, data, null);
                    }

                    return false;
                }
            }
            else
            {
                reader.Read();
                error = JsonBodyCheck.SkipValue(ref reader, field);
                if (error is not null)
                {
                    input = FailedInput(data);
                    return false;
                }
            }
        }

        if (binarySize is not null)
        {
            if (data is not null)
            {
                error = new InferenceError("An input cannot have both data and parameters.binary_data_size.", "inputs[0].data", "either JSON data or binary data");
                input = new InferenceInput("input", 0, data, null);
                return false;
            }

            // The shape first, so that more rows than Server:MaxBatchSize get the error that names the setting, not a
            // binary_data_size error.
            if (!TryCheckShape(shape, out _, out error))
            {
                return false;
            }

            if (!TryReadBinary(binary, binarySize.Value, out data, out dataCount, out error))
            {
                return false;
            }
        }

        bool valid = TryValidate(name, datatype, shape, data, dataCount, out input, out error);
        if (!valid && data is not null)
        {
            input = new InferenceInput("input", 0, data, null);
        }

        input = input with { FromBinary = binarySize is not null };
        return valid;
    }

    // The input of a tensor that failed to read carries its rented data array, if any, so that TryRead returns it to the pool.
    private static InferenceInput FailedInput(float[]? data) => data is null ? default : new InferenceInput("input", 0, data, null);

    // Reads an input's parameters object. A binary_data_size that is not a whole number, or parameters that are not an
    // object, is an error: ignoring it would report the input's data as missing instead.
    private static bool TryReadBinaryDataSize(ref Utf8JsonReader reader, out long? size, out InferenceError? error)
    {
        size = null;
        error = null;
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            error = new InferenceError("inputs[0].parameters must be a JSON object.", "inputs[0].parameters", "an object such as {\"binary_data_size\": 3136}");
            return false;
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            error = JsonBodyCheck.AddPropertyName(ref reader, names, "inputs[0].parameters", out string field);
            if (error is not null)
            {
                return false;
            }

            bool isSize = reader.ValueTextEquals("binary_data_size"u8);
            reader.Read();
            if (!isSize)
            {
                error = JsonBodyCheck.SkipValue(ref reader, field);
                if (error is not null)
                {
                    return false;
                }

                continue;
            }

            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long value))
            {
                error = new InferenceError("parameters.binary_data_size must be a whole number of bytes.", "inputs[0].parameters.binary_data_size", "an integer such as 3136");
                return false;
            }

            size = value;
        }

        return true;
    }

    private bool TryReadBinary(ReadOnlySpan<byte> binary, long size, out float[]? data, out int count, out InferenceError? error)
    {
        data = null;
        count = 0;
        long limit = (long)maxBatchSize * featureCount * sizeof(float);
        if (size < 0 || size % sizeof(float) != 0 || size > limit)
        {
            error = new InferenceError($"parameters.binary_data_size {size} is invalid.", "inputs[0].parameters.binary_data_size", $"a multiple of 4 up to {limit}");
            return false;
        }

        if (binary.Length == 0 && size > 0)
        {
            error = new InferenceError(
                $"The input declares {size} bytes of binary data, but none follow the JSON header. Send the JSON header's length in {InferenceApi.BinaryHeaderName}.",
                "inputs[0].parameters.binary_data_size",
                $"{size} bytes after a JSON header whose length {InferenceApi.BinaryHeaderName} gives");
            return false;
        }

        if (binary.Length != size)
        {
            error = new InferenceError($"The request carries {binary.Length} bytes of binary data but the input declares {size}.", "inputs[0].parameters.binary_data_size", $"the number of binary bytes after the JSON header ({binary.Length})");
            return false;
        }

        count = (int)(size / sizeof(float));
        data = ArrayPool<float>.Shared.Rent(Math.Max(count, 1));
        for (int index = 0; index < count; index++)
        {
            float value = BinaryPrimitives.ReadSingleLittleEndian(binary.Slice(index * sizeof(float)));
            if (!float.IsFinite(value))
            {
                ArrayPool<float>.Shared.Return(data);
                data = null;
                error = new InferenceError($"Binary input item {index} is not finite.", "inputs[0].data", "finite FP32 values");
                return false;
            }

            data[index] = value;
        }

        error = null;
        return true;
    }

    private bool TryValidate(string? name, string? datatype, List<long>? shape, float[]? data, int dataCount, out InferenceInput input, out InferenceError? error)
    {
        input = default;
        if (!TryCheckName(name, out error))
        {
            return false;
        }

        if (datatype != "FP32")
        {
            string message = datatype is null ? "Input datatype is missing or not a string." : $"Input datatype '{ClientText.Truncate(datatype)}' is not supported.";
            error = new InferenceError(message, "inputs[0].datatype", "FP32");
            return false;
        }

        if (!TryCheckShape(shape, out long batch, out error))
        {
            return false;
        }

        if (data is null)
        {
            error = new InferenceError("Input data is missing.", "inputs[0].data", $"{batch * featureCount} FP32 values");
            return false;
        }

        if (!TryCheckDataLength(shape!, dataCount, out error))
        {
            return false;
        }

        input = new InferenceInput(name!, (int)batch, data, null);
        error = null;
        return true;
    }

    // The model metadata declares the input as [-1, featureCount], and the request shape must match it, with -1
    // matching any batch size. Image shapes such as [1, 28, 28] are rejected even with the same element count,
    // because accepting them would hide a client that sends data in a layout the model does not read.
    private bool TryCheckShape(List<long>? shape, out long batch, out InferenceError? error)
    {
        batch = 0;
        string expectedShape = $"[N, {featureCount}] with 1 <= N <= {maxBatchSize}";
        if (shape is null || shape.Count == 0)
        {
            error = new InferenceError("Input shape is missing.", "inputs[0].shape", expectedShape);
            return false;
        }

        if (shape.Count != 2 || shape[1] != featureCount)
        {
            error = new InferenceError(
                $"Input shape [{string.Join(", ", shape)}] does not match the model's input shape [-1, {featureCount}]. Send rows of {featureCount} features as [N, {featureCount}].",
                "inputs[0].shape",
                expectedShape);
            return false;
        }

        batch = shape[0];
        if (batch < 1 || batch > maxBatchSize)
        {
            error = new InferenceError($"Batch size {batch} is out of range: the server accepts 1 to {maxBatchSize} rows ({ServerOptions.MaxBatchSizeKey}).", "inputs[0].shape[0]", $"1 to {maxBatchSize}");
            return false;
        }

        error = null;
        return true;
    }

    // Checks that the data contains shape[0] rows. When it contains a different whole number of rows, the shape's
    // batch size is the likely mistake, so the error names the shape that the data implies.
    private bool TryCheckDataLength(List<long> shape, int dataCount, out InferenceError? error)
    {
        long batch = shape[0];
        long expectedCount = batch * featureCount;
        if (dataCount == expectedCount)
        {
            error = null;
            return true;
        }

        string declared = $"[{string.Join(", ", shape)}]";
        if (dataCount > 0 && dataCount % featureCount == 0)
        {
            int rows = dataCount / featureCount;
            error = new InferenceError(
                $"Input data has {dataCount} values, which is {rows} rows of {featureCount}, but shape {declared} declares {batch}.",
                "inputs[0].shape",
                $"[{rows}, {featureCount}]");
            return false;
        }

        error = new InferenceError(
            $"Input data has {dataCount} values but shape {declared} needs {expectedCount}.",
            "inputs[0].data",
            $"{expectedCount} values, {batch} rows of {featureCount}");
        return false;
    }

    private static bool TryCheckName(string? name, out InferenceError? error)
    {
        error = null;
        if (name is null)
        {
            error = new InferenceError($"Input name is missing or not a string. Send the tensor as input '{ModelTensors.Input}'.", "inputs[0].name", ModelTensors.Input);
        }
        else if (name != ModelTensors.Input)
        {
            error = new InferenceError($"The model has no input named '{ClientText.Truncate(name)}'. Send the tensor as input '{ModelTensors.Input}'.", "inputs[0].name", ModelTensors.Input);
        }

        return error is null;
    }

    // Returns the string value, or null after skipping any other value, so that an object or array in its place does
    // not end the enclosing object early. The caller reports the null as a missing or invalid field.
    private static string? ReadStringOrSkip(ref Utf8JsonReader reader)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            return reader.GetString();
        }

        reader.Skip();
        return null;
    }

    private static bool TryReadShape(ref Utf8JsonReader reader, out List<long>? shape, out InferenceError? error)
    {
        shape = null;
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            error = new InferenceError("Input shape must be an array of integers.", "inputs[0].shape", "an array of non-negative integers");
            return false;
        }

        var dimensions = new List<long>(4);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long size) || size < 0 || dimensions.Count >= 8)
            {
                error = new InferenceError("Input shape must be an array of at most 8 non-negative integers.", "inputs[0].shape", "an array of non-negative integers");
                return false;
            }

            dimensions.Add(size);
        }

        shape = dimensions;
        error = null;
        return true;
    }

    // Reads data that is either flat or nested one array per row, as the shape [N, featureCount] allows. Nesting that
    // does not match the shape is rejected, because flattening it would shift features from one row into the next.
    private bool TryReadData(ref Utf8JsonReader reader, ref float[] data, ref int count, out InferenceError? error)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            error = new InferenceError("Input data must be an array of numbers, flat or nested one array per row.", "inputs[0].data", "an array of FP32 values");
            return false;
        }

        bool? nested = null;
        int index = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            bool isRow = reader.TokenType == JsonTokenType.StartArray;
            nested ??= isRow;
            if (isRow != nested)
            {
                string mismatch = isRow ? "is an array, but item 0 is a number" : "is not an array, but item 0 is";
                error = new InferenceError(
                    $"Input data item {index} {mismatch}. Send the data flat or as one array per row.",
                    $"inputs[0].data[{index}]",
                    $"all numbers (flat) or all arrays of {featureCount} numbers (one per row)");
                return false;
            }

            bool read = isRow ? TryReadRow(ref reader, index, ref data, ref count, out error) : TryAppendValue(ref reader, ref data, ref count, out error);
            if (!read)
            {
                return false;
            }

            index++;
        }

        error = null;
        return true;
    }

    private bool TryReadRow(ref Utf8JsonReader reader, int row, ref float[] data, ref int count, out InferenceError? error)
    {
        int start = count;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType == JsonTokenType.StartArray)
            {
                error = new InferenceError(
                    $"Input data row {row} contains an array at index {count - start}, but the input shape [N, {featureCount}] allows one level of nesting.",
                    $"inputs[0].data[{row}][{count - start}]",
                    "a number");
                return false;
            }

            if (!TryAppendValue(ref reader, ref data, ref count, out error))
            {
                return false;
            }
        }

        int length = count - start;
        if (length != featureCount)
        {
            error = new InferenceError(
                $"Input data row {row} has {length} values, but the input shape [N, {featureCount}] needs {featureCount} in each row.",
                $"inputs[0].data[{row}]",
                $"an array of {featureCount} numbers");
            return false;
        }

        error = null;
        return true;
    }

    private bool TryAppendValue(ref Utf8JsonReader reader, ref float[] data, ref int count, out InferenceError? error)
    {
        if (reader.TokenType != JsonTokenType.Number || !reader.TryGetSingle(out float value))
        {
            error = new InferenceError($"Input data item {count} is not a number.", "inputs[0].data", "FP32 values");
            return false;
        }

        // JSON has no NaN or infinity literals, so a value that reads as infinite is a number beyond the FP32 range.
        if (!float.IsFinite(value))
        {
            error = new InferenceError(
                string.Create(CultureInfo.InvariantCulture, $"Input data item {count} is outside the FP32 range, whose largest magnitude is {float.MaxValue}."),
                "inputs[0].data",
                "finite FP32 values");
            return false;
        }

        if (count == data.Length)
        {
            // In long, because Server:MaxBatchSize rows of a wide model's features can exceed int's range.
            long limit = (long)maxBatchSize * featureCount;
            if (count >= limit)
            {
                error = new InferenceError($"Input data has more than {limit} values: the server accepts at most {maxBatchSize} rows ({ServerOptions.MaxBatchSizeKey}) of {featureCount} features.", "inputs[0].data", $"at most {maxBatchSize} rows of {featureCount} values");
                return false;
            }

            float[] larger = ArrayPool<float>.Shared.Rent((int)Math.Min(Math.Min((long)data.Length * 2, limit), Array.MaxLength));
            data.AsSpan(0, count).CopyTo(larger);
            ArrayPool<float>.Shared.Return(data);
            data = larger;
        }

        data[count++] = value;
        error = null;
        return true;
    }
}
