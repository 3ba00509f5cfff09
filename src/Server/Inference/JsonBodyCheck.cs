using System.Text;
using System.Text.Json;

namespace ContinualServe.Server.Inference;

/// <summary>
/// Checks of an inference request body besides its fields: an empty body, and a property name that occurs twice in
/// one JSON object. JSON parsers disagree on which of two equal names wins (System.Text.Json's JsonDocument and
/// serializer keep the last one), so a duplicate is rejected instead of read either way. Names are compared after
/// unescaping and with case, as the readers match them. The checks run while the readers read, so a body is not
/// tokenized twice.
/// </summary>
public static class JsonBodyCheck
{
    private static readonly byte[] JsonWhitespace = " \t\r\n"u8.ToArray();

    /// <summary>Returns true when <paramref name="json"/> contains nothing but JSON whitespace.</summary>
    public static bool IsEmpty(ReadOnlySpan<byte> json) => json.TrimStart(JsonWhitespace).IsEmpty;

    /// <summary>
    /// Adds the property name at <paramref name="reader"/> to <paramref name="names"/>, the names seen so far in its
    /// object, and sets <paramref name="field"/> to the property's path. Returns the error for a name that the object
    /// contained already, or null.
    /// </summary>
    /// <param name="objectPath">The object's path in error fields, such as <c>inputs[0]</c>. It is empty for the body.</param>
    public static InferenceError? AddPropertyName(ref Utf8JsonReader reader, HashSet<string> names, string objectPath, out string field)
    {
        ArgumentNullException.ThrowIfNull(names);
        string name = reader.GetString()!;
        field = Join(objectPath, name);
        return names.Add(name) ? null : Duplicate(field);
    }

    /// <summary>
    /// Skips the value at <paramref name="reader"/>, as <see cref="Utf8JsonReader.Skip"/> does, and returns the error
    /// for the first property name that occurs twice in an object inside it, or null. After an error the reader stops
    /// inside the value.
    /// </summary>
    /// <param name="path">The value's path in error fields, such as <c>parameters.extra</c>.</param>
    public static InferenceError? SkipValue(ref Utf8JsonReader reader, string path)
    {
        if (reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray))
        {
            return null;
        }

        var scopes = new List<Scope> { new(reader.TokenType == JsonTokenType.StartObject) };
        while (scopes.Count > 0 && reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                case JsonTokenType.StartArray:
                    CountValue(scopes);
                    scopes.Add(new Scope(reader.TokenType == JsonTokenType.StartObject));
                    break;
                case JsonTokenType.EndObject:
                case JsonTokenType.EndArray:
                    scopes.RemoveAt(scopes.Count - 1);
                    break;
                case JsonTokenType.PropertyName:
                    Scope current = scopes[^1];
                    current.Property = reader.GetString()!;
                    if (!current.Names.Add(current.Property))
                    {
                        return Duplicate(FieldPath(path, scopes));
                    }

                    break;
                default:
                    CountValue(scopes);
                    break;
            }
        }

        return null;
    }

    /// <summary>
    /// Returns the error for the first property name that occurs twice in an object of <paramref name="element"/>,
    /// or null.
    /// </summary>
    /// <param name="path">The element's path in error fields. It is empty for the body.</param>
    public static InferenceError? FindDuplicateProperty(JsonElement element, string path = "")
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty property in element.EnumerateObject())
            {
                string field = Join(path, property.Name);
                if (!names.Add(property.Name))
                {
                    return Duplicate(field);
                }

                if (FindDuplicateProperty(property.Value, field) is InferenceError error)
                {
                    return error;
                }
            }
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            int index = 0;
            foreach (JsonElement item in element.EnumerateArray())
            {
                // Only objects and arrays can contain properties, so the many numbers of a row need no path.
                if (item.ValueKind is JsonValueKind.Object or JsonValueKind.Array
                    && FindDuplicateProperty(item, $"{path}[{index}]") is InferenceError error)
                {
                    return error;
                }

                index++;
            }
        }

        return null;
    }

    private static InferenceError Duplicate(string field) =>
        new($"The request body contains the property {field} twice.", field, "each property once per object");

    private static string Join(string objectPath, string name)
    {
        string truncated = ClientText.Truncate(name);
        return objectPath.Length == 0 ? truncated : objectPath + "." + truncated;
    }

    // Array elements are counted when they start, so Index is the position of the current element.
    private static void CountValue(List<Scope> scopes)
    {
        if (!scopes[^1].IsObject)
        {
            scopes[^1].Index++;
        }
    }

    // Builds a path in the form of the other error fields, such as parameters.extra[2].name.
    private static string FieldPath(string path, List<Scope> scopes)
    {
        var field = new StringBuilder(path);
        foreach (Scope scope in scopes)
        {
            if (!scope.IsObject)
            {
                field.Append('[').Append(scope.Index).Append(']');
                continue;
            }

            if (field.Length > 0)
            {
                field.Append('.');
            }

            field.Append(ClientText.Truncate(scope.Property ?? string.Empty));
        }

        return field.ToString();
    }

    // The set of names is created on first use, so arrays allocate none.
    private sealed class Scope(bool isObject)
    {
        private HashSet<string>? names;

        public bool IsObject { get; } = isObject;

        public HashSet<string> Names => names ??= new HashSet<string>(StringComparer.Ordinal);

        public string? Property { get; set; }

        public int Index { get; set; } = -1;
    }
}
