using System.Reflection;
using ContinualServe.Learner;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Server.Batching;
using ContinualServe.Server.Hosting;
using ContinualServe.Server.Management;
using Microsoft.Extensions.Configuration;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Hosting;

public sealed class UnknownSettingsTests
{
    [Fact]
    public void KnownSettingsPass()
    {
        // Letter case is free, array items and nested options are settings, and other sections are not checked.
        IConfiguration configuration = Configuration(
            ("server:storedirectory", "/tmp/models"),
            ("Learner:InitialSpec:HiddenSizes:0", "128"),
            ("Learner:InitialSpec:Labels:3", "dress"),
            ("Learner:Trainer:Preset", "best"),
            ("Learner:Promotion:MaxForgetting", "0.3"),
            ("Distribution:StoreTokenFile", "/run/token"),
            ("Management:RequireToken", "true"),
            ("Logging:LogLevel:Default", "Warning"),
            ("Kestrel:Limits:MaxRequestBodySize", "10"));

        Should.NotThrow(() => UnknownSettings.ThrowIfAny(configuration));
    }

    [Fact]
    public void MisspelledSettingNamesNearest()
    {
        IConfiguration configuration = Configuration(("Server:StoreDirectry", "/tmp/x"), ("Learner:Trainer:LearningRat", "0.1"));

        string message = Should.Throw<InvalidConfigurationException>(() => UnknownSettings.ThrowIfAny(configuration)).Message;

        message.ShouldContain("'Server:StoreDirectry' (did you mean 'Server:StoreDirectory'?)");
        message.ShouldContain("'Learner:Trainer:LearningRat' (did you mean 'Learner:Trainer:LearningRate'?)");
    }

    [Fact]
    public void InvalidDurationNamesFormat()
    {
        IConfiguration configuration = Configuration(("Batching:MaxQueueDelay", "2ms"), ("Batching:RequestTimeout", "5s"));

        string message = Should.Throw<InvalidConfigurationException>(() => UnknownSettings.ThrowIfAny(configuration)).Message;

        message.ShouldContain("'Batching:MaxQueueDelay' is '2ms'");
        message.ShouldContain("'Batching:RequestTimeout' is '5s'");
        message.ShouldContain("[d.]hh:mm:ss[.fraction], for example 00:00:00.002 for 2 ms");
    }

    public static TheoryData<string> DurationSettings() => new(DurationSettingPaths());

    // A duration that the host reads while it is built fails in the binder, before ThrowIfAny runs, so both must give
    // the same message.
    [Theory]
    [MemberData(nameof(DurationSettings))]
    public void BinderDurationFailureMatchesCheck(string path)
    {
        IConfiguration configuration = Configuration((path, "2ms"));
        string section = path.Split(':')[0];
        Type options = UnknownSettings.Sections.Single(entry => entry.Section == section).Options;

        InvalidOperationException binderFailure = Should.Throw<InvalidOperationException>(() => configuration.GetSection(section).Get(options));
        string checkMessage = Should.Throw<InvalidConfigurationException>(() => UnknownSettings.ThrowIfAny(configuration)).Message;

        UnknownSettings.DescribeBinderDurationFailure(binderFailure.Message).ShouldBe(checkMessage);
        checkMessage.ShouldContain($"'{path}' is '2ms'");
    }

    [Fact]
    public void EverySectionHasDurations()
    {
        // Checks that the reflection in DurationPaths finds the TimeSpan settings of each section.
        string[] paths = DurationSettingPaths();

        paths.ShouldContain("Learner:SessionTimeout");
        paths.ShouldContain("Server:StorePollInterval");
        paths.ShouldContain("Distribution:RetryDelay");
        paths.ShouldContain("Batching:RequestTimeout");
        paths.ShouldContain("HttpLimits:KeepAliveTimeout");
    }

    [Theory]
    [InlineData("Failed to convert configuration value 'x' at 'Learner:Trainer:Strategy' to type 'ContinualServe.Learner.Training.ReplayStrategy'.")]
    [InlineData("Failed to convert configuration value 'x' at 'Learner:RoundExamples' to type 'System.Int32'.")]
    [InlineData("Unrecognized scheme in server address 'ftp://x'.")]
    public void OtherBinderFailureNotDuration(string message) =>
        UnknownSettings.DescribeBinderDurationFailure(message).ShouldBeNull();

    [Fact]
    public void ValidDurationsPass()
    {
        IConfiguration configuration = Configuration(("Batching:MaxQueueDelay", "00:00:00.002"), ("Batching:RequestTimeout", "1.00:00:00"));

        Should.NotThrow(() => UnknownSettings.ThrowIfAny(configuration));
    }

    [Fact]
    public void DistantSettingHasNoSuggestion()
    {
        IConfiguration configuration = Configuration(("Batching:Turbo", "true"));

        string message = Should.Throw<InvalidConfigurationException>(() => UnknownSettings.ThrowIfAny(configuration)).Message;

        message.ShouldContain("'Batching:Turbo'");
        message.ShouldNotContain("did you mean");
    }

    [Theory]
    [InlineData("Learner:InitialSpec:FeatureCount", "784")]
    [InlineData("Learner:InitialSpec:ClassCount", "10")]
    [InlineData("Learner:ResolvedDeadLetterTopic", "cats.dlq")]
    [InlineData("Learner:Trainer:UsesReplay", "false")]
    public void ReadOnlyPropertyIsUnknown(string key, string value)
    {
        // The binder sets no property without a public setter, so these keys would be ignored like a misspelled one.
        IConfiguration configuration = Configuration((key, value));

        string message = Should.Throw<InvalidConfigurationException>(() => UnknownSettings.ThrowIfAny(configuration)).Message;

        message.ShouldContain($"'{key}'");
    }

    [Fact]
    public void SingleValueForListRejected()
    {
        // Learner__InitialSpec__HiddenSizes=512 binds nothing: the list keeps its default [256, 256].
        IConfiguration configuration = Configuration(("Learner:InitialSpec:HiddenSizes", "512"));

        string message = Should.Throw<InvalidConfigurationException>(() => UnknownSettings.ThrowIfAny(configuration)).Message;

        message.ShouldContain("'Learner:InitialSpec:HiddenSizes'");
        message.ShouldContain("Learner:InitialSpec:HiddenSizes:0");
    }

    [Fact]
    public void EmptyListValuePasses()
    {
        // A JSON file's empty array reads as a key without a value.
        IConfiguration configuration = new ConfigurationBuilder()
            .AddJsonStream(new MemoryStream("""{"Learner":{"InitialSpec":{"HiddenSizes":[]}}}"""u8.ToArray()))
            .Build();

        Should.NotThrow(() => UnknownSettings.ThrowIfAny(configuration));
    }

    [Theory]
    [InlineData("Learner:Trainer", "best")]
    [InlineData("Learner:Topic:Name", "cats")]
    public void ValueAtWrongLevelRejected(string key, string value)
    {
        // The binder reads no value of an options class and no key below a plain value, so both are ignored.
        IConfiguration configuration = Configuration((key, value));

        string message = Should.Throw<InvalidConfigurationException>(() => UnknownSettings.ThrowIfAny(configuration)).Message;

        message.ShouldContain($"'{key}'");
    }

    private static string[] DurationSettingPaths() =>
        [.. UnknownSettings.Sections.SelectMany(entry => DurationPaths(entry.Section, entry.Options))];

    // Paths of the TimeSpan settings with a public setter under path, including those of nested options classes.
    private static IEnumerable<string> DurationPaths(string path, Type type)
    {
        foreach (PropertyInfo property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            string child = path + ":" + property.Name;
            if (property.PropertyType == typeof(TimeSpan) && property.SetMethod is { IsPublic: true })
            {
                yield return child;
            }
            else if (property.PropertyType.IsClass && property.PropertyType.Namespace?.StartsWith("ContinualServe", StringComparison.Ordinal) == true)
            {
                foreach (string nested in DurationPaths(child, property.PropertyType))
                {
                    yield return nested;
                }
            }
        }
    }

    private static IConfiguration Configuration(params (string Key, string Value)[] settings) =>
        new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(setting => new KeyValuePair<string, string?>(setting.Key, setting.Value)))
            .Build();
}
