using System.ComponentModel.DataAnnotations;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Kafka;

// librdkafka accepts session.timeout.ms from 1 to 3,600,000. A value outside that range must fail validation (exit
// code 2): otherwise the learner saves and announces a version before the consumer rejects it, and exits with code 1,
// which orchestrators restart.
public sealed class SessionTimeoutOptionTests
{
    [Theory]
    [InlineData("30.00:00:00")]
    [InlineData("01:00:01")]
    [InlineData("00:00:00.0005")]
    [InlineData("00:00:00")]
    [InlineData("-00:00:10")]
    public void OutOfRangeTimeoutIsRejected(string timeout)
    {
        List<ValidationResult> results = Validate(TimeSpan.Parse(timeout, System.Globalization.CultureInfo.InvariantCulture));

        ValidationResult result = results.ShouldHaveSingleItem();
        result.MemberNames.ShouldBe([nameof(LearnerOptions.SessionTimeout)]);
        result.ErrorMessage.ShouldNotBeNull();
        result.ErrorMessage.ShouldContain("Learner:SessionTimeout");
        result.ErrorMessage.ShouldContain("hh:mm:ss");
    }

    [Theory]
    [InlineData("00:00:00.001")]
    [InlineData("00:00:03")]
    [InlineData("00:00:10")]
    [InlineData("01:00:00")]
    public void InRangeTimeoutPasses(string timeout) =>
        Validate(TimeSpan.Parse(timeout, System.Globalization.CultureInfo.InvariantCulture)).ShouldBeEmpty();

    private static List<ValidationResult> Validate(TimeSpan timeout)
    {
        var options = new LearnerOptions { BootstrapServers = "127.0.0.1:9092", SessionTimeout = timeout };
        var results = new List<ValidationResult>();
        Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true);
        return results;
    }
}
