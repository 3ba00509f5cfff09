using ContinualServe.Learner.Ingestion;
using ContinualServe.Server.Cli;
using Microsoft.Extensions.Configuration;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>The limits that <c>produce</c> checks a file against, read from the learner's configuration keys.</summary>
public sealed class ProduceLimitsTests
{
    [Fact]
    public void UnsetKeysUseLearnerDefaults()
    {
        ExampleRecordCodec codec = ProduceCommand.CreateCodec(4, 3, Configuration());

        codec.MaxTask.ShouldBe(1000);
        codec.MaxAbsFeatureValue.ShouldBe(1e6f);
        codec.FeatureCount.ShouldBe(4);
        codec.ClassCount.ShouldBe(3);
    }

    [Fact]
    public void LearnerKeysRaiseLimits()
    {
        IConfiguration configuration = Configuration(("Learner:MaxTask", "5000"), ("Learner:MaxAbsFeatureValue", "1e9"));

        ExampleRecordCodec codec = ProduceCommand.CreateCodec(4, 3, configuration);

        codec.MaxTask.ShouldBe(5000);
        codec.MaxAbsFeatureValue.ShouldBe(1e9f);
    }

    [Theory]
    [InlineData("Learner:MaxTask", "0", "Learner:MaxTask must be from 1 to 2147483647.")]
    [InlineData("Learner:MaxAbsFeatureValue", "1e39", "Learner:MaxAbsFeatureValue must be from 1 to 3.4E+38 (the largest float).")]
    [InlineData("Learner:MaxTask", "many", "Learner:MaxTask is 'many'; expected a whole number from 1 to 2147483647.")]
    [InlineData("Learner:MaxAbsFeatureValue", "1,5", "Learner:MaxAbsFeatureValue is '1,5'; expected a number from 1 to 3.4E+38.")]
    public void InvalidLimitRejected(string key, string value, string message)
    {
        InvalidDataException exception = Should.Throw<InvalidDataException>(() => ProduceCommand.CreateCodec(4, 3, Configuration((key, value))));

        exception.Message.ShouldBe(message);
    }

    private static IConfiguration Configuration(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder()
            .AddInMemoryCollection(values.Select(pair => new KeyValuePair<string, string?>(pair.Key, pair.Value)))
            .Build();
}
