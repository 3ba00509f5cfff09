using System.Text.RegularExpressions;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// A setting that the configuration binder could not convert, read from the binder's message: "Failed to convert
/// configuration value '2ms' at 'Learner:SessionTimeout' to type 'System.TimeSpan'." (Microsoft.Extensions.Configuration.Binder 10.0).
/// </summary>
internal sealed partial record BinderConversionFailure(string Value, string Path, string TypeName)
{
    /// <summary>Reads <paramref name="message"/>, or returns null when it is not the binder's conversion message.</summary>
    public static BinderConversionFailure? Parse(string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        Match match = ConversionMessage().Match(message);
        return match.Success
            ? new BinderConversionFailure(match.Groups["value"].Value, match.Groups["path"].Value, match.Groups["type"].Value)
            : null;
    }

    [GeneratedRegex(@"^Failed to convert configuration value '(?<value>.*)' at '(?<path>[^']*)' to type '(?<type>[^']*)'")]
    private static partial Regex ConversionMessage();
}
