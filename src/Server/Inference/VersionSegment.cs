using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace ContinualServe.Server.Inference;

/// <summary>
/// Parser of the <c>{version}</c> path segment, shared by every route that takes one, so that an invalid segment
/// gets the same 400 error on each of them, distinct from the 404 for a valid version that is not loaded.
/// </summary>
public static class VersionSegment
{
    /// <summary>
    /// Parses <paramref name="segment"/> as a model version: a whole number of at least 1, in ASCII digits without
    /// a sign. Returns false with the error to send as a 400 response otherwise.
    /// </summary>
    public static bool TryParse(string segment, out long version, [NotNullWhen(false)] out InferenceError? error)
    {
        ArgumentNullException.ThrowIfNull(segment);
        if (long.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out version) && version >= 1)
        {
            error = null;
            return true;
        }

        version = 0;
        error = new InferenceError($"Version '{ClientText.Truncate(segment)}' is invalid. A version is a positive integer, such as 1.", "version", "a positive integer");
        return false;
    }
}
