using System.Globalization;
using System.Net;
using System.Text;

namespace ContinualServe.Server.Demo;

/// <summary>
/// Renders one or more demo runs (e.g. naive and replay on the same stream) as a self-contained HTML page:
/// summary, accuracy matrix heatmap and accuracy per task over the stream, drawn as inline SVG.
/// </summary>
internal static class DemoHtmlReport
{
    private const int ChartWidth = 640;
    private const int ChartHeight = 260;
    private static readonly string[] Colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

    public static string Render(IReadOnlyList<DemoResult> runs)
    {
        var html = new StringBuilder();
        html.Append("""
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>ContinualServe demo report</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;color:#1d2330;margin:24px;background:#f6f7f9}
            h1{font-size:22px} h2{font-size:17px;margin-top:28px} h3{font-size:15px}
            .runs{display:flex;flex-wrap:wrap;gap:20px} .run{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:12px 16px}
            table{border-collapse:collapse} th,td{padding:5px 10px;text-align:right;font-variant-numeric:tabular-nums}
            th{color:#6b7385} td.cell{color:#fff;text-align:center;min-width:58px;border:1px solid #fff}
            .summary td:first-child,.summary th:first-child{text-align:left} .summary tr:nth-child(even){background:#f0f1f4}
            svg text{font-size:11px;fill:#6b7385} .legend span{margin-right:12px}
            </style></head><body>
            <h1>ContinualServe demo report</h1>
            """);
        html.Append(CultureInfo.InvariantCulture, $"<p>Split Fashion-MNIST streamed task after task; accuracies are on each task's holdout (never trained on). {runs.Count} run(s).</p>");
        AppendSummary(html, runs);
        html.Append("<h2>Accuracy matrix R[i][j]</h2><p>Row: after training on task i. Column: holdout accuracy on task j.</p><div class=\"runs\">");
        foreach (DemoResult run in runs)
        {
            html.Append("<div class=\"run\"><h3>").Append(Encode(Label(run))).Append("</h3>");
            AppendHeatmap(html, run);
            html.Append("</div>");
        }

        html.Append("</div><h2>Accuracy per task over the stream</h2><p>One point per published version; x is the number of examples trained so far.</p><div class=\"runs\">");
        foreach (DemoResult run in runs)
        {
            html.Append("<div class=\"run\"><h3>").Append(Encode(Label(run))).Append("</h3>");
            AppendStreamChart(html, run.Stream);
            html.Append("</div>");
        }

        html.Append("</div></body></html>\n");
        return html.ToString();
    }

    private static void AppendSummary(StringBuilder html, IReadOnlyList<DemoResult> runs)
    {
        html.Append("<h2>Summary</h2><table class=\"summary\"><tr><th>measure</th>");
        foreach (DemoResult run in runs)
        {
            html.Append("<th>").Append(Encode(Label(run))).Append("</th>");
        }

        html.Append("</tr>");
        AppendRow(html, "average accuracy (ACC)", runs, run => Format(run.Evaluation.AverageAccuracy));
        AppendRow(html, "backward transfer (BWT)", runs, run => Format(run.Evaluation.BackwardTransfer));
        foreach (int task in runs.SelectMany(run => run.Evaluation.Forgetting.Keys).Distinct().Order())
        {
            AppendRow(html, $"forgetting, task {task}", runs, run => run.Evaluation.Forgetting.TryGetValue(task, out double value) ? Format(value) : "");
        }

        foreach (int task in runs.SelectMany(run => run.TestAccuracyByTask.Keys).Distinct().Order())
        {
            AppendRow(html, $"test-set accuracy, task {task}", runs, run => run.TestAccuracyByTask.TryGetValue(task, out double value) ? Format(value) : "");
        }

        AppendRow(html, "versions published", runs, run => $"{run.FirstVersion} to {run.FinalVersion}");
        AppendRow(html, "examples produced / trained / lost", runs, run => $"{run.ExamplesProduced} / {run.ExamplesTrained} / {run.ExamplesLost}");
        AppendRow(html, "inference requests ok / failed", runs, run => $"{run.RequestsSucceeded} / {run.RequestsFailed}");
        AppendRow(html, "duration", runs, run => run.Duration.ToString(@"m\:ss", CultureInfo.InvariantCulture));
        html.Append("</table>");
    }

    private static void AppendRow(StringBuilder html, string measure, IReadOnlyList<DemoResult> runs, Func<DemoResult, string> value)
    {
        html.Append("<tr><td>").Append(Encode(measure)).Append("</td>");
        foreach (DemoResult run in runs)
        {
            html.Append("<td>").Append(Encode(value(run))).Append("</td>");
        }

        html.Append("</tr>");
    }

    private static void AppendHeatmap(StringBuilder html, DemoResult run)
    {
        IReadOnlyList<int> tasks = run.Evaluation.Tasks;
        html.Append("<table class=\"heatmap\"><tr><th>after task</th>");
        foreach (int task in tasks)
        {
            html.Append(CultureInfo.InvariantCulture, $"<th>task {task}</th>");
        }

        html.Append("</tr>");
        for (int row = 0; row < run.Evaluation.AccuracyMatrix.Count && row < tasks.Count; row++)
        {
            IReadOnlyList<double> values = run.Evaluation.AccuracyMatrix[row];
            html.Append(CultureInfo.InvariantCulture, $"<tr><th>{tasks[row]}</th>");
            for (int column = 0; column < tasks.Count; column++)
            {
                if (column < values.Count)
                {
                    html.Append(CultureInfo.InvariantCulture, $"<td class=\"cell\" data-after-task=\"{tasks[row]}\" data-task=\"{tasks[column]}\" style=\"background:{HeatColor(values[column])}\">{Format(values[column])}</td>");
                }
                else
                {
                    html.Append("<td></td>");
                }
            }

            html.Append("</tr>");
        }

        html.Append("</table>");
    }

    private static void AppendStreamChart(StringBuilder html, IReadOnlyList<StreamPoint> stream)
    {
        StreamPoint[] points = stream.Where(point => point.AccuracyByTask.Count > 0).ToArray();
        if (points.Length == 0)
        {
            html.Append("<p>No evaluated version.</p>");
            return;
        }

        const double left = 40, top = 10, right = ChartWidth - 10, bottom = ChartHeight - 30;
        double xMin = points[0].ExamplesTrained;
        double xMax = Math.Max(points[^1].ExamplesTrained, xMin + 1);
        double X(double value) => left + ((value - xMin) / (xMax - xMin) * (right - left));
        double Y(double accuracy) => bottom - (accuracy * (bottom - top));
        html.Append(CultureInfo.InvariantCulture, $"<svg class=\"stream\" width=\"{ChartWidth}\" height=\"{ChartHeight}\" viewBox=\"0 0 {ChartWidth} {ChartHeight}\">");
        html.Append(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"#dde1e8\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"#dde1e8\"/>");
        foreach (double tick in new[] { 0, 0.5, 1 })
        {
            html.Append(CultureInfo.InvariantCulture, $"<text x=\"4\" y=\"{Y(tick) + 4:F1}\">{tick:F1}</text>");
        }

        html.Append(CultureInfo.InvariantCulture, $"<text x=\"{left}\" y=\"{ChartHeight - 8}\">{xMin:F0} examples</text><text x=\"{right - 90}\" y=\"{ChartHeight - 8}\">{xMax:F0} examples</text>");
        int[] tasks = points.SelectMany(point => point.AccuracyByTask.Keys).Distinct().Order().ToArray();
        for (int index = 0; index < tasks.Length; index++)
        {
            int task = tasks[index];
            StreamPoint[] seen = points.Where(point => point.AccuracyByTask.ContainsKey(task)).ToArray();
            // A dashed line marks where the task's first evaluation appears.
            html.Append(CultureInfo.InvariantCulture, $"<line x1=\"{X(seen[0].ExamplesTrained):F1}\" y1=\"{top}\" x2=\"{X(seen[0].ExamplesTrained):F1}\" y2=\"{bottom}\" stroke=\"#c8ccd4\" stroke-dasharray=\"4 4\"/>");
            string polyline = string.Join(' ', seen.Select(point => string.Create(CultureInfo.InvariantCulture, $"{X(point.ExamplesTrained):F1},{Y(point.AccuracyByTask[task]):F1}")));
            html.Append(CultureInfo.InvariantCulture, $"<polyline class=\"task\" data-task=\"{task}\" fill=\"none\" stroke-width=\"2\" stroke=\"{Colors[index % Colors.Length]}\" points=\"{polyline}\"/>");
        }

        html.Append("</svg><div class=\"legend\">");
        for (int index = 0; index < tasks.Length; index++)
        {
            html.Append(CultureInfo.InvariantCulture, $"<span style=\"color:{Colors[index % Colors.Length]}\">&#9644; task {tasks[index]}</span>");
        }

        html.Append("</div>");
    }

    private static string Label(DemoResult run) => string.IsNullOrEmpty(run.Label) ? "run" : run.Label;

    // Red (0) through yellow to green (1).
    private static string HeatColor(double accuracy) =>
        string.Create(CultureInfo.InvariantCulture, $"hsl({120 * Math.Clamp(accuracy, 0, 1):F0},65%,{38 + (6 * (1 - Math.Clamp(accuracy, 0, 1))):F0}%)");

    private static string Format(double value) => value.ToString("F4", CultureInfo.InvariantCulture);

    private static string Encode(string text) => WebUtility.HtmlEncode(text);
}
