using System.ComponentModel.DataAnnotations;
using ContinualServe.Learner;
using ContinualServe.Server.Distribution;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Distribution;

public sealed class BootstrapServersTests
{
    [Theory]
    [InlineData("127.0.0.1:9092")]
    [InlineData("kafka-0.kafka:9092, kafka-1.kafka:9092")]
    [InlineData("[::1]:9092")]
    [InlineData("")]
    public void ValidListPasses(string servers) => LearnerOptionsValidator.BootstrapServersError(servers).ShouldBeNull();

    [Theory]
    [InlineData("127.0.0.1:PORT", "'127.0.0.1:PORT'")]
    [InlineData("127.0.0.1", "'127.0.0.1'")]
    [InlineData("127.0.0.1:9092,:9093", "':9093'")]
    [InlineData("127.0.0.1:70000", "'127.0.0.1:70000'")]
    [InlineData("127.0.0.1:0", "'127.0.0.1:0'")]
    public void InvalidEntryIsNamed(string servers, string entry) =>
        LearnerOptionsValidator.BootstrapServersError(servers).ShouldStartWith(entry);

    [Fact]
    public void MissingServersNameTheOption()
    {
        var options = new LearnerOptions();
        var results = new List<ValidationResult>();

        Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true).ShouldBeFalse();

        results.ShouldContain(result => result.ErrorMessage!.Contains("--bootstrap-servers HOST:PORT", StringComparison.Ordinal));
    }
}
