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

    private static string[] Split(string tokens) => tokens.Split(' ', StringSplitOptions.RemoveEmptyEntries);
}
