using System.ComponentModel.DataAnnotations;
using ContinualServe.Learner;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>The ranges of the learner's limits on record fields, which the start checks with the other settings.</summary>
public sealed class LearnerRecordLimitTests
{
    [Theory]
    [InlineData(nameof(LearnerOptions.MaxTask), 0)]
    [InlineData(nameof(LearnerOptions.MaxTaskJump), 0)]
    [InlineData(nameof(LearnerOptions.MaxTaskJump), -1)]
    public void OutOfRangeLimitNamesKey(string property, int value)
    {
        var options = new LearnerOptions { BootstrapServers = "127.0.0.1:9092" };
        typeof(LearnerOptions).GetProperty(property)!.SetValue(options, value);

        ValidationResult error = Validate(options).ShouldHaveSingleItem();

        error.ErrorMessage.ShouldStartWith($"Learner:{property} must be from 1");
    }

    [Theory]
    [InlineData(0.5f)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NaN)]
    public void OutOfRangeFeatureLimitNamesKey(float value)
    {
        var options = new LearnerOptions { BootstrapServers = "127.0.0.1:9092", MaxAbsFeatureValue = value };

        ValidationResult error = Validate(options).ShouldHaveSingleItem();

        error.ErrorMessage.ShouldBe("Learner:MaxAbsFeatureValue must be from 1 to 3.4E+38 (the largest float).");
    }

    // The float nearest 3e38 is 3.0000000055e38, which a maximum of 3e38 in double rejected.
    [Theory]
    [InlineData(3e38f)]
    [InlineData(float.MaxValue)]
    public void LargestFeatureLimitsPass(float value)
    {
        var options = new LearnerOptions { BootstrapServers = "127.0.0.1:9092", MaxAbsFeatureValue = value };

        Validate(options).ShouldBeEmpty();
    }

    [Fact]
    public void DefaultLimitsPass()
    {
        var options = new LearnerOptions { BootstrapServers = "127.0.0.1:9092" };

        Validate(options).ShouldBeEmpty();
        options.MaxTask.ShouldBe(1000);
        options.MaxTaskJump.ShouldBe(10);
        options.MaxAbsFeatureValue.ShouldBe(1e6f);
    }

    private static List<ValidationResult> Validate(LearnerOptions options)
    {
        var results = new List<ValidationResult>();
        Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true);
        return results;
    }
}
