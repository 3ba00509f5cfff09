using System.ComponentModel.DataAnnotations;
using System.Globalization;

namespace ContinualServe.Model;

/// <summary>
/// Range check of a <see cref="TimeSpan"/> setting, with limits written as TimeSpan strings ("00:00:01"). Configuration
/// reads a bare number as days, so <c>--Server:StorePollInterval=5</c> means five days. A range of plausible values turns
/// such a slip into a start error that explains the duration format.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class DurationRangeAttribute : RangeAttribute
{
    public DurationRangeAttribute(string minimum, string maximum)
        : base(typeof(TimeSpan), minimum, maximum)
    {
        ParseLimitsInInvariantCulture = true;
        ConvertValueInInvariantCulture = true;
    }

    public override string FormatErrorMessage(string name) =>
        string.Create(CultureInfo.InvariantCulture, $"{name} must be from {Minimum} to {Maximum}.")
        + " Durations are written [d.]hh:mm:ss[.fraction], for example 00:00:10 for 10 seconds, and a bare number counts days.";
}
