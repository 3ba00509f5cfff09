using System.Text.RegularExpressions;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Model.Store;
using ContinualServe.Server.Demo;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Spectre.Console;
using Xunit;

namespace ContinualServe.ObservabilityTests;

// The demo sets the same process-wide metrics as the observed pipeline, for the same model name. A demo swap while the
// pipeline waits for its final model version overwrites that version, so these tests run alone.
[Collection(nameof(DemoReportTests))]
[CollectionDefinition(nameof(DemoReportTests), DisableParallelization = true)]
public sealed partial class DemoReportTests
{
    [Fact]
    public void HtmlReportDrawsCellsAndTaskLines()
    {
        string directory = Directory.CreateTempSubdirectory("continualserve-report-").FullName;
        try
        {
            DemoResult replay = Result(directory, "DerPlusPlus", [[0.95], [0.80, 0.90]]);
            DemoResult naive = Result(directory, "Naive", [[0.96], [0.10, 0.97]]);

            string path = DemoReport.SaveHtml([naive, replay]);

            path.ShouldBe(Path.Combine(directory, "report.html"));
            string html = File.ReadAllText(path);
            CellPattern().Matches(html).Select(match => match.Groups[1].Value + "/" + match.Groups[2].Value)
                .ShouldBe(["1/1", "2/1", "2/2", "1/1", "2/1", "2/2"]);
            TaskLinePattern().Count(html).ShouldBe(4);
            html.ShouldContain("<th>Naive</th><th>DerPlusPlus</th>");
            html.ShouldContain("<td>0.8000</td>");
            // Self-contained: nothing is loaded from elsewhere.
            html.ShouldNotContain("src=");
            html.ShouldNotContain("href=");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData(RecordFormat.Json, "JSON records")]
    [InlineData(RecordFormat.Binary, "binary records")]
    public async Task DemoPrintsStatusPageAndRecordsVersions(RecordFormat format, string formatLine)
    {
        var options = new DemoOptions
        {
            DataDirectory = RepositoryPaths.DataDirectory,
            Urls = "http://127.0.0.1:0",
            RunsDirectory = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N")),
            Device = "cpu",
            Tasks = 1,
            Clients = 1,
            RoundExamples = 200,
            MaxLag = 300,
            RecordFormat = format,
            Timeout = TimeSpan.FromMinutes(2),
        };
        var output = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.No });
        console.Profile.Width = 300;
        try
        {
            DemoResult result = await new DemoRunner(options, console, NullLoggerFactory.Instance).RunAsync(CancellationToken.None);

            StatusPageLine().IsMatch(output.ToString()).ShouldBeTrue(output.ToString());
            output.ToString().ShouldContain("Strategy derpp: DerPlusPlus, Reservoir buffer of");
            output.ToString().ShouldContain(formatLine);
            // A tenth of the examples is held out for evaluation, and none may be rejected as undecodable.
            result.ExamplesTrained.ShouldBeGreaterThan(result.ExamplesProduced * 8 / 10);
            result.ExamplesLost.ShouldBe(0);
            result.Stream.Select(point => point.Version).ShouldBe(Enumerable.Range((int)result.FirstVersion + 1, (int)(result.FinalVersion - result.FirstVersion)).Select(version => (long)version));
            result.Stream[^1].AccuracyByTask.Keys.ShouldBe([1]);
            result.Label.ShouldBe("derpp");
            string html = File.ReadAllText(DemoReport.SaveHtml([result]));
            CellPattern().Count(html).ShouldBe(1);
        }
        finally
        {
            Directory.Delete(options.RunsDirectory, recursive: true);
        }
    }

    private static DemoResult Result(string directory, string label, double[][] matrix) => new()
    {
        Evaluation = new EvaluationSummary
        {
            Tasks = [1, 2],
            AccuracyMatrix = matrix,
            AverageAccuracy = matrix[^1].Average(),
            BackwardTransfer = matrix[1][0] - matrix[0][0],
            Forgetting = new Dictionary<int, double> { [1] = matrix[0][0] - matrix[1][0], [2] = 0 },
        },
        TestAccuracyByTask = new Dictionary<int, double> { [1] = matrix[1][0], [2] = matrix[1][1] },
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
        RunDirectory = directory,
        Label = label,
        Stream =
        [
            new StreamPoint(2, 300, matrix[0][0], new Dictionary<int, double> { [1] = matrix[0][0] }),
            new StreamPoint(3, 700, 0.7, new Dictionary<int, double> { [1] = 0.6, [2] = 0.8 }),
            new StreamPoint(4, 1080, matrix[1].Average(), new Dictionary<int, double> { [1] = matrix[1][0], [2] = matrix[1][1] }),
        ],
    };

    [GeneratedRegex("<td class=\"cell\" data-after-task=\"(\\d+)\" data-task=\"(\\d+)\"")]
    private static partial Regex CellPattern();

    [GeneratedRegex("<polyline class=\"task\"")]
    private static partial Regex TaskLinePattern();

    [GeneratedRegex(@"Status page at http://127\.0\.0\.1:\d+/ui/")]
    private static partial Regex StatusPageLine();
}
