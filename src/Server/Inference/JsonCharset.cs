using Microsoft.Net.Http.Headers;

namespace ContinualServe.Server.Inference;

/// <summary>
/// Check of the charset parameter of a JSON request. Request bodies are always parsed as UTF-8, so a body
/// declared in another charset is rejected instead of being misread.
/// </summary>
public static class JsonCharset
{
    private static readonly HashSet<string> AcceptedCharsets = new(StringComparer.OrdinalIgnoreCase) { "utf-8", "utf8", "us-ascii" };

    /// <summary>
    /// Returns a 415 error when <paramref name="mediaType"/> names a charset other than utf-8 or its subset
    /// us-ascii (compared case-insensitively), or null when it names one of those or none. The label utf8 counts as
    /// utf-8, as the WHATWG Encoding Standard lists it, because some clients send it.
    /// </summary>
    public static InferenceError? Check(MediaTypeHeaderValue mediaType)
    {
        ArgumentNullException.ThrowIfNull(mediaType);
        if (!mediaType.Charset.HasValue)
        {
            return null;
        }

        string charset = HeaderUtilities.RemoveQuotes(mediaType.Charset).ToString();
        if (AcceptedCharsets.Contains(charset))
        {
            return null;
        }

        return new InferenceError(
            $"Content-Type charset '{ClientText.Truncate(charset)}' is not supported. Send the JSON body in UTF-8, with charset=utf-8 or no charset.",
            "Content-Type",
            "charset=utf-8, or no charset");
    }
}
