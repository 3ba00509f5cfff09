using System.ComponentModel.DataAnnotations;
using System.Text.RegularExpressions;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Validation of a name that forms one path segment of a route: a letter or digit first, then letters, digits, '.', '_'
/// and '-'. A '/' would split the segment, and routing does not decode %2F, so such a name matches no request.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed partial class RouteSegmentAttribute : ValidationAttribute
{
    protected override ValidationResult? IsValid(object? value, ValidationContext validationContext)
    {
        if (value is not string name || SegmentPattern().IsMatch(name))
        {
            return ValidationResult.Success;
        }

        string key = $"{ServerOptions.SectionName}:{validationContext.MemberName}";
        return new ValidationResult(
            $"{key} '{name}' is invalid: it must start with a letter or digit and contain only letters, digits, '.', '_' and '-', "
                + "because it is one path segment of the inference routes.",
            validationContext.MemberName is null ? null : [validationContext.MemberName]);
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex SegmentPattern();
}
