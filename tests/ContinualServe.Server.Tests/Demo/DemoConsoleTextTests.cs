using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Demo;
using Shouldly;
using Spectre.Console;
using Xunit;

namespace ContinualServe.Server.Tests.Demo;

public sealed class DemoConsoleTextTests
{
    [Theory]
    [InlineData(1, "1 step")]
    [InlineData(2, "2 steps")]
    [InlineData(4, "4 steps")]
    public void StepsPerBatchIsPluralized(int steps, string expected) =>
        DemoRunner.StepsPerBatch(steps).ShouldBe(expected);

    // With two tasks the table is about 30 characters wide, and a table title wraps to that width.
    [Fact]
    public void MatrixLegendIsOneLine()
    {
        var writer = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 120;

        DemoReport.Print(console, Result());

        string[] lines = writer.ToString().Split('\n');
        lines.ShouldContain(line => line.Contains("Accuracy matrix R[i][j] on holdout (row: after training on task i; column: task j)", StringComparison.Ordinal));
        lines.ShouldContain(line => line.Contains("after task", StringComparison.Ordinal));
    }

    [Fact]
    public void NoAnswersHaveNoOnlineAccuracy()
    {
        var writer = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Ansi = AnsiSupport.No, Out = new AnsiConsoleOutput(writer) });
        console.Profile.Width = 120;

        DemoReport.Print(console, Result() with { RequestsSucceeded = 0, RequestsCorrect = 0 });

        string line = writer.ToString().Split('\n').Single(text => text.Contains("online accuracy", StringComparison.Ordinal));
        line.ShouldContain("n/a (no answers)");
    }

    [Fact]
    public void ManagementHelpListsEveryOutcome()
    {
        string[] outcomes = ["ok", "unauthorized", "forbidden", "bad_request", "not_found", "conflict", "unavailable", "store_write_failed", "store_read_failed"];

        foreach (string outcome in outcomes)
        {
            ReliabilityMetrics.ManagementRequests.Help.ShouldContain(outcome);
        }
    }

    private static DemoResult Result() => new()
    {
        Evaluation = new EvaluationSummary
        {
            Tasks = [1, 2],
            AccuracyMatrix = [[0.95], [0.80, 0.90]],
            AverageAccuracy = 0.85,
            BackwardTransfer = -0.15,
            Forgetting = new Dictionary<int, double> { [1] = 0.15, [2] = 0 },
        },
        TestAccuracyByTask = new Dictionary<int, double> { [1] = 0.80, [2] = 0.90 },
        FirstVersion = 1,
        FinalVersion = 4,
        NewestServedVersion = 4,
        ExamplesProduced = 1200,
        ExamplesTrained = 1080,
        ExamplesLost = 0,
        RequestsSucceeded = 100,
        RequestsFailed = 0,
        RequestsCorrect = 80,
        Duration = TimeSpan.FromSeconds(30),
        RunDirectory = Path.GetTempPath(),
        Label = "Naive",
        Stream = [],
    };
}
