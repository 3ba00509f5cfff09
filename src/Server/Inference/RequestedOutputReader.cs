using System.Text.Json;

namespace ContinualServe.Server.Inference;

/// <summary>
/// Reads the outputs a request names and whether each is binary. An output's <c>parameters.binary_data</c>
/// overrides the request's <c>parameters.binary_data_output</c>, as the binary tensor data extension specifies.
/// A request without <c>outputs</c>, or with an empty array, gets every output of the model.
/// </summary>
internal static class RequestedOutputReader
{
    private static readonly string ExpectedNames = string.Join(" or ", ModelTensors.Outputs);
    private static readonly string QuotedNames = string.Join(" and ", ModelTensors.Outputs.Select(name => $"'{name}'"));

    public static readonly IReadOnlyList<RequestedOutput> AllJson = [.. ModelTensors.Outputs.Select(name => new RequestedOutput(name, Binary: false))];

    public static readonly IReadOnlyList<RequestedOutput> AllBinary = [.. ModelTensors.Outputs.Select(name => new RequestedOutput(name, Binary: true))];

    /// <summary>Reads the request-level <c>parameters</c> object, of which only <c>binary_data_output</c> is used.</summary>
    public static bool TryReadParameters(ref Utf8JsonReader reader, out bool binaryDataOutput, out InferenceError? error)
    {
        binaryDataOutput = false;
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            error = new InferenceError("'parameters' must be an object.", "parameters", "an object such as {\"binary_data_output\": true}");
            return false;
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            error = JsonBodyCheck.AddPropertyName(ref reader, names, "parameters", out string field);
            if (error is not null)
            {
                return false;
            }

            bool isBinaryDataOutput = reader.ValueTextEquals("binary_data_output"u8);
            reader.Read();
            if (!isBinaryDataOutput)
            {
                error = JsonBodyCheck.SkipValue(ref reader, field);
                if (error is not null)
                {
                    return false;
                }
            }
            else if (!TryReadBoolean(ref reader, out binaryDataOutput))
            {
                error = new InferenceError("parameters.binary_data_output must be true or false.", "parameters.binary_data_output", "true or false");
                return false;
            }
        }

        error = null;
        return true;
    }

    /// <summary>
    /// Reads the <c>outputs</c> array. Each entry's binary flag is null where the entry leaves it to the
    /// request-level <c>binary_data_output</c>.
    /// </summary>
    public static bool TryReadOutputs(ref Utf8JsonReader reader, out List<(string Name, bool? Binary)> outputs, out InferenceError? error)
    {
        outputs = new List<(string Name, bool? Binary)>(ModelTensors.Outputs.Count);
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            error = new InferenceError("'outputs' must be an array.", "outputs", $"an array of objects naming {ExpectedNames}");
            return false;
        }

        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (!TryReadOutput(ref reader, outputs, out error))
            {
                return false;
            }
        }

        error = null;
        return true;
    }

    /// <summary>Combines the requested outputs with the request-level flag into the outputs a response carries.</summary>
    public static IReadOnlyList<RequestedOutput> Resolve(List<(string Name, bool? Binary)>? outputs, bool binaryDataOutput)
    {
        if (outputs is null || outputs.Count == 0)
        {
            return binaryDataOutput ? AllBinary : AllJson;
        }

        return [.. outputs.Select(output => new RequestedOutput(output.Name, output.Binary ?? binaryDataOutput))];
    }

    private static bool TryReadOutput(ref Utf8JsonReader reader, List<(string Name, bool? Binary)> outputs, out InferenceError? error)
    {
        int index = outputs.Count;
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            error = new InferenceError("Each requested output must be an object.", $"outputs[{index}]", $"an object naming {ExpectedNames}");
            return false;
        }

        string? name = null;
        bool? binary = null;
        var names = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            error = JsonBodyCheck.AddPropertyName(ref reader, names, $"outputs[{index}]", out string field);
            if (error is not null)
            {
                return false;
            }

            if (reader.ValueTextEquals("name"u8))
            {
                reader.Read();
                name = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else if (reader.ValueTextEquals("parameters"u8))
            {
                reader.Read();
                if (!TryReadOutputParameters(ref reader, index, out binary, out error))
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

        if (!TryCheckName(name, index, outputs, out error))
        {
            return false;
        }

        outputs.Add((name!, binary));
        return true;
    }

    private static bool TryReadOutputParameters(ref Utf8JsonReader reader, int index, out bool? binary, out InferenceError? error)
    {
        binary = null;
        string field = $"outputs[{index}].parameters";
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            error = new InferenceError($"{field} must be an object.", field, "an object such as {\"binary_data\": true}");
            return false;
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            error = JsonBodyCheck.AddPropertyName(ref reader, names, field, out string property);
            if (error is not null)
            {
                return false;
            }

            bool isBinaryData = reader.ValueTextEquals("binary_data"u8);
            reader.Read();
            if (!isBinaryData)
            {
                error = JsonBodyCheck.SkipValue(ref reader, property);
                if (error is not null)
                {
                    return false;
                }

                continue;
            }

            if (!TryReadBoolean(ref reader, out bool value))
            {
                error = new InferenceError($"{field}.binary_data must be true or false.", $"{field}.binary_data", "true or false");
                return false;
            }

            binary = value;
        }

        error = null;
        return true;
    }

    private static bool TryCheckName(string? name, int index, List<(string Name, bool? Binary)> outputs, out InferenceError? error)
    {
        string field = $"outputs[{index}].name";
        if (name is null)
        {
            error = new InferenceError($"Output name is missing or not a string. The model's outputs are {QuotedNames}.", field, ExpectedNames);
            return false;
        }

        if (!ModelTensors.Outputs.Contains(name, StringComparer.Ordinal))
        {
            error = new InferenceError($"The model has no output named '{ClientText.Truncate(name)}'. Its outputs are {QuotedNames}.", field, ExpectedNames);
            return false;
        }

        if (outputs.Exists(output => output.Name == name))
        {
            error = new InferenceError($"Output '{name}' is requested twice.", field, "each output at most once");
            return false;
        }

        error = null;
        return true;
    }

    private static bool TryReadBoolean(ref Utf8JsonReader reader, out bool value)
    {
        value = reader.TokenType == JsonTokenType.True;
        if (reader.TokenType is JsonTokenType.True or JsonTokenType.False)
        {
            return true;
        }

        reader.Skip();
        return false;
    }
}
