using System.Globalization;
using System.Reflection;
using ContinualServe.Learner;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Server.Batching;
using ContinualServe.Server.Management;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Finds settings in ContinualServe's configuration sections that name no property of the section's options type,
/// such as <c>Server:StoreDirectry</c>. The configuration binder skips such keys, so a misspelled setting would
/// otherwise leave its default in place without a word. Also finds durations that TimeSpan cannot parse, such as 2ms.
/// </summary>
public static class UnknownSettings
{
    private const string DurationFormat =
        "Durations are written [d.]hh:mm:ss[.fraction], for example 00:00:00.002 for 2 ms or 00:00:05 for 5 s, and a bare number counts days.";

    /// <summary>The configuration sections that are checked, with the options type each binds to.</summary>
    internal static readonly (string Section, Type Options)[] Sections =
    [
        (ServerOptions.SectionName, typeof(ServerOptions)),
        (BatchingOptions.SectionName, typeof(BatchingOptions)),
        (HttpLimitsOptions.SectionName, typeof(HttpLimitsOptions)),
        (ManagementOptions.SectionName, typeof(ManagementOptions)),
        (DistributionOptions.SectionName, typeof(DistributionOptions)),
        (LearnerOptions.SectionName, typeof(LearnerOptions)),
        (KafkaOptions.SectionName, typeof(KafkaOptions)),
    ];

    /// <summary>
    /// Throws when a key under one of the sections names no property that the binder sets, with each unknown key and the nearest known name.
    /// Keys are compared without regard to letter case, as the binder does.
    /// </summary>
    /// <exception cref="InvalidConfigurationException">At least one key is unknown.</exception>
    public static void ThrowIfAny(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var unknown = new List<string>();
        var invalidDurations = new List<string>();
        foreach ((string section, Type options) in Sections)
        {
            Collect(configuration.GetSection(section), options, unknown, invalidDurations);
        }

        if (unknown.Count > 0)
        {
            throw new InvalidConfigurationException(
                "Unknown or misused settings, which would be ignored: " + string.Join("; ", unknown)
                + ". Check their spelling against docs/deploy.md#configuration, or remove them.");
        }

        if (invalidDurations.Count > 0)
        {
            // Without this check the binder fails with "Failed to convert configuration value ... to type 'System.TimeSpan'",
            // which gives no format.
            throw new InvalidConfigurationException(InvalidDurationsMessage(invalidDurations));
        }
    }

    /// <summary>
    /// Returns the message of <see cref="ThrowIfAny"/> for a binder message about a duration that TimeSpan cannot parse,
    /// or null for any other message. A setting that the host reads while it is built fails in the binder, before
    /// <see cref="ThrowIfAny"/> can check it.
    /// </summary>
    public static string? DescribeBinderDurationFailure(string binderMessage)
    {
        BinderConversionFailure? failure = BinderConversionFailure.Parse(binderMessage);
        return failure is not null && failure.TypeName.Contains("System.TimeSpan", StringComparison.Ordinal)
            ? InvalidDurationsMessage([$"'{failure.Path}' is '{failure.Value}'"])
            : null;
    }

    private static string InvalidDurationsMessage(IEnumerable<string> invalidDurations) =>
        "Invalid durations: " + string.Join("; ", invalidDurations) + ". " + DurationFormat;

    private static void Collect(IConfigurationSection section, Type type, List<string> unknown, List<string> invalidDurations)
    {
        PropertyInfo[] properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(IsBound).ToArray();
        foreach (IConfigurationSection child in section.GetChildren())
        {
            PropertyInfo? property = properties.FirstOrDefault(candidate => string.Equals(candidate.Name, child.Key, StringComparison.OrdinalIgnoreCase));
            if (property is null)
            {
                string? nearest = Spelling.Nearest(child.Key, properties.Select(candidate => candidate.Name), ignoreCase: true);
                unknown.Add(nearest is null ? $"'{child.Path}'" : $"'{child.Path}' (did you mean '{section.Path}:{nearest}'?)");
            }
            else if (IsComposite(property.PropertyType))
            {
                // The binder reads only the keys below an options class, so Learner:Trainer=best is ignored.
                if (!string.IsNullOrEmpty(child.Value))
                {
                    unknown.Add($"'{child.Path}' (a group of settings, so it takes no value of its own)");
                }

                Collect(child, property.PropertyType, unknown, invalidDurations);
            }
            else if (IsCollection(property.PropertyType))
            {
                // The binder reads a list only from numbered keys, so HiddenSizes=512 leaves the default list in place.
                if (!string.IsNullOrEmpty(child.Value) && !child.GetChildren().Any())
                {
                    unknown.Add($"'{child.Path}' (a list, so set its items as '{child.Path}:0', '{child.Path}:1' and so on)");
                }
            }
            else
            {
                // The binder reads a plain value from its own key and ignores any key below it.
                foreach (IConfigurationSection below in child.GetChildren())
                {
                    unknown.Add($"'{below.Path}' ('{child.Path}' is a single value with no settings below it)");
                }

                if (IsDuration(property.PropertyType) && !string.IsNullOrEmpty(child.Value)
                    && !TimeSpan.TryParse(child.Value, CultureInfo.InvariantCulture, out _))
                {
                    invalidDurations.Add($"'{child.Path}' is '{child.Value}'");
                }
            }
        }
    }

    // The binder sets a property through a public setter, and binds into the existing value of a read-only class
    // property. It skips indexers and read-only values such as ModelSpec.FeatureCount, so a key naming one is ignored.
    private static bool IsBound(PropertyInfo property) =>
        property.GetIndexParameters().Length == 0
        && property.GetMethod is { IsPublic: true }
        && (property.SetMethod is { IsPublic: true } || IsComposite(property.PropertyType));

    // The binder converts TimeSpan values with TimeSpan.Parse and the invariant culture.
    private static bool IsDuration(Type type) => (Nullable.GetUnderlyingType(type) ?? type) == typeof(TimeSpan);

    // byte[] is left out because the binder reads it from one base64 string.
    private static bool IsCollection(Type type) =>
        type != typeof(string) && type != typeof(byte[]) && typeof(System.Collections.IEnumerable).IsAssignableFrom(type);

    // A class with settings of its own, as opposed to a value, a string or a collection, whose keys are free.
    private static bool IsComposite(Type type) =>
        type.IsClass && type != typeof(string) && !typeof(System.Collections.IEnumerable).IsAssignableFrom(type) && type != typeof(Uri);
}
