using Microsoft.Net.Http.Headers;

namespace ContinualServe.Server.Inference;

/// <summary>
/// Check of the charset parameter of a JSON request. Request bodies are always parsed as UTF-8, so a body
/// declared in another charset is rejected instead of being misread.
/// </summary>
public static class JsonCharset
{
    /// <summary>
    /// Returns a 415 error when <paramref name="mediaType"/> names a charset other than utf-8 or its subset
    /// us-ascii (compared case-insensitively), or null when it names one of those or none.
    /// </summary>
    public static InferenceError? Check(MediaTypeHeaderValue mediaType)
    {
        ArgumentNullException.ThrowIfNull(mediaType);
        if (!mediaType.Charset.HasValue)
        {
            return null;
        }

        string charset = HeaderUtilities.RemoveQuotes(mediaType.Charset).ToString();
        if (charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("us-ascii", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        return new InferenceError(
            $"Content-Type charset '{charset}' is not supported. Send the JSON body in UTF-8, with charset=utf-8 or no charset.",
            "Content-Type",
            "charset=utf-8, or no charset");
    }
}
