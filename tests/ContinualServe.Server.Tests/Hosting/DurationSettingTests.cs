using System.ComponentModel.DataAnnotations;
using System.Globalization;
using ContinualServe.Learner;
using ContinualServe.Learner.Publishing;
using ContinualServe.Server.Batching;
using ContinualServe.Server.Hosting;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Hosting;

// Configuration reads a bare number as days, so each duration setting needs a range that rejects "5" (five days)
// where seconds were meant, and accepts its default.
public sealed class DurationSettingTests
{
    public static TheoryData<string, string> Settings => new()
    {
        { "Server", nameof(ServerOptions.StorePollInterval) },
        { "HttpLimits", nameof(HttpLimitsOptions.RequestHeadersTimeout) },
        { "HttpLimits", nameof(HttpLimitsOptions.KeepAliveTimeout) },
        { "HttpLimits", nameof(HttpLimitsOptions.MinBodyRateGracePeriod) },
        { "Batching", nameof(BatchingOptions.MaxQueueDelay) },
        { "Batching", nameof(BatchingOptions.RequestTimeout) },
        { "Learner", nameof(LearnerOptions.IdleRoundDelay) },
        { "Learner", nameof(LearnerOptions.SessionTimeout) },
        { "Distribution", nameof(DistributionOptions.RetryDelay) },
        { "Distribution", nameof(DistributionOptions.MaxRetryDelay) },
        { "Distribution", nameof(DistributionOptions.DownloadTimeout) },
    };

    [Theory]
    [MemberData(nameof(Settings))]
    public void DefaultIsValid(string section, string property)
    {
        object options = NewOptions(section);

        Errors(options, property).ShouldBeEmpty();
    }

    [Theory]
    [MemberData(nameof(Settings))]
    public void BareNumberOfDaysIsRejected(string section, string property)
    {
        object options = NewOptions(section);
        options.GetType().GetProperty(property)!.SetValue(options, TimeSpan.Parse("5", CultureInfo.InvariantCulture));

        string error = Errors(options, property).ShouldHaveSingleItem();
        error.ShouldContain("hh:mm:ss");
    }

    [Theory]
    [MemberData(nameof(Settings))]
    public void NegativeDurationIsRejected(string section, string property)
    {
        object options = NewOptions(section);
        options.GetType().GetProperty(property)!.SetValue(options, TimeSpan.FromSeconds(-1));

        Errors(options, property).ShouldHaveSingleItem();
    }

    private static object NewOptions(string section) => section switch
    {
        "Server" => new ServerOptions(),
        "HttpLimits" => new HttpLimitsOptions(),
        "Batching" => new BatchingOptions(),
        "Learner" => new LearnerOptions { BootstrapServers = "127.0.0.1:9092" },
        "Distribution" => new DistributionOptions(),
        _ => throw new ArgumentOutOfRangeException(nameof(section), section, "No options class for this section."),
    };

    private static List<string> Errors(object options, string property)
    {
        var results = new List<ValidationResult>();
        Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true);
        return results.Where(result => result.MemberNames.Contains(property)).Select(result => result.ErrorMessage ?? "").ToList();
    }
}
