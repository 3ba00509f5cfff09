using System.Globalization;

namespace ContinualServe.Server.Inference;

/// <summary>
/// Truncation of text that a client sent (a path segment, a header value, a body field) before an error message or a
/// log line repeats it. Without it, one request could make the server write megabytes into an error body or a log.
/// </summary>
public static class ClientText
{
    /// <summary>Maximum number of characters of the client's text that a message repeats.</summary>
    public const int MaxLength = 64;

    /// <summary>
    /// Returns <paramref name="text"/> unchanged when it has at most <see cref="MaxLength"/> characters, and otherwise
    /// its first <see cref="MaxLength"/> characters followed by "..." and the original length, such as
    /// <c>aaaa... (100000 characters)</c>. The cut never splits a surrogate pair.
    /// </summary>
    public static string Truncate(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length <= MaxLength)
        {
            return text;
        }

        int keptLength = char.IsHighSurrogate(text[MaxLength - 1]) ? MaxLength - 1 : MaxLength;
        return string.Create(CultureInfo.InvariantCulture, $"{text.AsSpan(0, keptLength)}... ({text.Length} characters)");
    }
}
