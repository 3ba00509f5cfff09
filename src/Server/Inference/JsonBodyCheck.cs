using System.Text;
using System.Text.Json;

namespace ContinualServe.Server.Inference;

/// <summary>
/// Checks of an inference request body that come before its fields are read: an empty body, and a property name
/// that occurs twice in one JSON object. JSON parsers disagree on which of two equal names wins (System.Text.Json's
/// JsonDocument and serializer keep the last one), so a duplicate is rejected instead of read either way.
/// </summary>
public static class JsonBodyCheck
{
    private static readonly byte[] JsonWhitespace = " \t\r\n"u8.ToArray();

    /// <summary>Returns true when <paramref name="json"/> contains nothing but JSON whitespace.</summary>
    public static bool IsEmpty(ReadOnlySpan<byte> json) => json.TrimStart(JsonWhitespace).IsEmpty;

    /// <summary>
    /// Returns the error for the first property name that occurs twice in one object of the first JSON value in
    /// <paramref name="json"/>, compared after unescaping and with case, or null when there is none. Content after
    /// that value is left to the caller. Throws <see cref="JsonException"/> for JSON that is not valid and
    /// <see cref="InvalidOperationException"/> for a name that is not valid UTF-8.
    /// </summary>
    public static InferenceError? FindDuplicateProperty(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        var scopes = new List<Scope>();
        while (reader.Read())
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
                        string field = FieldPath(scopes);
                        return new InferenceError($"The request body contains the property {field} twice.", field, "each property once per object");
                    }

                    break;
                default:
                    CountValue(scopes);
                    break;
            }

            if (scopes.Count == 0)
            {
                return null;
            }
        }

        return null;
    }

    // Array elements are counted when they start, so Index is the position of the current element.
    private static void CountValue(List<Scope> scopes)
    {
        if (scopes.Count > 0 && !scopes[^1].IsObject)
        {
            scopes[^1].Index++;
        }
    }

    // Builds a path in the form of the other error fields, such as inputs[0].name.
    private static string FieldPath(List<Scope> scopes)
    {
        var path = new StringBuilder();
        foreach (Scope scope in scopes)
        {
            if (!scope.IsObject)
            {
                path.Append('[').Append(scope.Index).Append(']');
                continue;
            }

            if (path.Length > 0)
            {
                path.Append('.');
            }

            path.Append(ClientText.Truncate(scope.Property ?? string.Empty));
        }

        return path.ToString();
    }

    // The set of names is created on first use, so the many row arrays of a tensor's data allocate none.
    private sealed class Scope(bool isObject)
    {
        private HashSet<string>? names;

        public bool IsObject { get; } = isObject;

        public HashSet<string> Names => names ??= new HashSet<string>(StringComparer.Ordinal);

        public string? Property { get; set; }

        public int Index { get; set; } = -1;
    }
}
