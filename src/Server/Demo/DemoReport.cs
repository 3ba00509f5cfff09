using System.Globalization;
using System.Text.Json;
using ContinualServe.Model;
using Spectre.Console;

namespace ContinualServe.Server.Demo;

/// <summary>Prints a demo result as tables and saves it as JSON in the run directory.</summary>
public static class DemoReport
{
    internal const string AccuracyMatrixLegend =
        "Accuracy matrix R[i][j] on holdout (row: after training on task i; column: task j)";

    public static void Print(IAnsiConsole console, DemoResult result)
    {
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(result);
        console.WriteLine();

        // A table wraps its title to the table's width, which is narrow with few tasks, so the legend is a line of its own.
        console.WriteLine(AccuracyMatrixLegend);
        console.Write(AccuracyMatrixTable(result));
        console.Write(SummaryTable(result));
    }

    /// <summary>Writes the result as report.json in its run directory and returns the path.</summary>
    public static string Save(DemoResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        string path = Path.Combine(result.RunDirectory, "report.json");
        File.WriteAllText(path, JsonSerializer.Serialize(result, ModelSpec.JsonOptions));
        return path;
    }

    /// <summary>
    /// Writes report.html (summary, accuracy matrix heatmap, accuracy per task over the stream) in the first run's
    /// directory and returns the path. Several runs, e.g. naive and replay on the same stream, are drawn side by side.
    /// </summary>
    public static string SaveHtml(IReadOnlyList<DemoResult> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        if (runs.Count == 0)
        {
            throw new ArgumentException("A report needs at least one run.", nameof(runs));
        }

        // NOTE: `continualserve demo` passes its one run; no command yet runs naive and replay back to back.
        string path = Path.Combine(runs[0].RunDirectory, "report.html");
        File.WriteAllText(path, DemoHtmlReport.Render(runs));
        return path;
    }

    private static Table AccuracyMatrixTable(DemoResult result)
    {
        var table = new Table();
        table.AddColumn("after task");
        foreach (int task in result.Evaluation.Tasks)
        {
            table.AddColumn(new TableColumn($"task {task}").RightAligned());
        }

        for (int row = 0; row < result.Evaluation.AccuracyMatrix.Count; row++)
        {
            var cells = new List<string> { result.Evaluation.Tasks[row].ToString(CultureInfo.InvariantCulture) };
            for (int column = 0; column < result.Evaluation.Tasks.Count; column++)
            {
                IReadOnlyList<double> values = result.Evaluation.AccuracyMatrix[row];
                cells.Add(column < values.Count ? Format(values[column]) : "");
            }

            table.AddRow(cells.ToArray());
        }

        return table;
    }

    private static Table SummaryTable(DemoResult result)
    {
        var table = new Table().Title("Result").AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
        table.AddRow("average accuracy (ACC, holdout)", Format(result.Evaluation.AverageAccuracy));
        table.AddRow("backward transfer (BWT)", Format(result.Evaluation.BackwardTransfer));
        foreach ((int task, double forgetting) in result.Evaluation.Forgetting.OrderBy(pair => pair.Key))
        {
            table.AddRow($"forgetting, task {task}", Format(forgetting));
        }

        foreach ((int task, double accuracy) in result.TestAccuracyByTask.OrderBy(pair => pair.Key))
        {
            table.AddRow($"test-set accuracy, task {task}", Format(accuracy));
        }

        table.AddRow("model versions published", $"{result.FirstVersion} to {result.FinalVersion}");
        table.AddRow("examples produced / trained / lost", $"{result.ExamplesProduced} / {result.ExamplesTrained} / {result.ExamplesLost}");
        table.AddRow("candidates rejected by the promotion gate", result.CandidatesRejected.ToString(CultureInfo.InvariantCulture));
        table.AddRow("inference requests served", result.RequestsSucceeded.ToString(CultureInfo.InvariantCulture));
        table.AddRow("inference requests failed", result.RequestsFailed.ToString(CultureInfo.InvariantCulture));
        table.AddRow("online accuracy of served answers", result.RequestsSucceeded == 0 ? "n/a (no answers)" : Format((double)result.RequestsCorrect / result.RequestsSucceeded));
        table.AddRow("duration", result.Duration.ToString(@"m\:ss", CultureInfo.InvariantCulture));
        return table;
    }

    private static string Format(double value) => value.ToString("F4", CultureInfo.InvariantCulture);
}
