using ContinualServe.Server.Cli;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>Unmatched command-line tokens of the role commands; each case lists tokens separated by spaces.</summary>
public sealed class RoleCommandLineTests
{
    [Theory]
    [InlineData("")]
    [InlineData("--Server:ModelName=digits")]
    [InlineData("--Learner:Trainer:Seed 7")]
    [InlineData("--Distribution:RetryDelay=00:00:02 --Server:Device cpu")]
    public void ConfigurationArgumentsAreAccepted(string tokens)
    {
        RoleCommandLine.FindInvalidArgument(Split(tokens)).ShouldBeNull();
    }

    [Theory]
    [InlineData("--stor models", "--stor")]
    [InlineData("extra", "extra")]
    [InlineData("--Server:Device cpu stray", "stray")]
    [InlineData("-Server:Device=cpu", "-Server:Device=cpu")]
    public void MisspelledOptionIsRejected(string tokens, string reported)
    {
        string? error = RoleCommandLine.FindInvalidArgument(Split(tokens));

        error.ShouldNotBeNull();
        error.ShouldContain($"'{reported}'");
    }

    [Theory]
    [InlineData("--Server:Device")]
    [InlineData("--Server:Device --Server:ModelName=digits")]
    [InlineData("--urls")]
    public void KeyWithoutValueIsRejected(string tokens)
    {
        string? error = RoleCommandLine.FindInvalidArgument(Split(tokens));

        error.ShouldNotBeNull();
        error.ShouldContain($"Missing value for '{Split(tokens)[0]}'");
    }

    [Theory]
    [InlineData("--stroe models", "Did you mean '--store'?")]
    [InlineData("--stor=models", "Did you mean '--store'?")]
    [InlineData("--bootstrap-server 127.0.0.1:9092", "Did you mean '--bootstrap-servers'?")]
    public void NearOptionIsSuggested(string tokens, string suggestion)
    {
        string? error = RoleCommandLine.FindInvalidArgument(Split(tokens), ["--store", "--bootstrap-servers", "--urls"]);

        error.ShouldNotBeNull();
        error.ShouldContain(suggestion);
    }

    [Fact]
    public void DistantOptionGetsNoSuggestion()
    {
        string? error = RoleCommandLine.FindInvalidArgument(["--frobnicate"], ["--store", "--urls"]);

        error.ShouldNotBeNull();
        error.ShouldNotContain("Did you mean");
    }

    [Fact]
    public void StrategyBinderErrorSuggestsPreset()
    {
        string hint = RoleCommandLine.StrategyHint(
            "Failed to convert configuration value 'best' at 'Learner:Trainer:Strategy' to type 'ContinualServe.Learner.Training.ReplayStrategy'.");

        hint.ShouldContain("Learner:Trainer:Preset");
        hint.ShouldContain("DerPlusPlus");
    }

    [Fact]
    public void OtherBinderErrorGetsNoHint() =>
        RoleCommandLine.StrategyHint("Failed to convert configuration value 'x' at 'Learner:RoundExamples' to type 'System.Int32'.").ShouldBeEmpty();

    // The binder's message names only the enum's .NET type.
    [Fact]
    public void EnumBinderErrorListsValues()
    {
        string hint = RoleCommandLine.EnumValuesHint(
            "Failed to convert configuration value 'Reset' at 'Learner:OnTopicMismatch' to type 'ContinualServe.Learner.Checkpoints.TopicMismatchAction'.");

        hint.ShouldBe(" It takes Stop, ResetToEarliest (in any case).");
    }

    [Theory]
    [InlineData("Failed to convert configuration value 'x' at 'Learner:RoundExamples' to type 'System.Int32'.")]
    [InlineData("Failed to convert configuration value 'x' at 'Learner:Unknown' to type 'No.Such.Type'.")]
    [InlineData("Something else about the configuration")]
    public void NonEnumBinderErrorGetsNoValues(string message) =>
        RoleCommandLine.EnumValuesHint(message).ShouldBeEmpty();

    private static string[] Split(string tokens) => tokens.Split(' ', StringSplitOptions.RemoveEmptyEntries);
}
