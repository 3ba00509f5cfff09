using ScottPlot;

namespace ContinualServe.Learner.Experiments;

/// <summary>PNG pictures of experiment results, drawn with ScottPlot 5.</summary>
public static class ExperimentCharts
{
    /// <summary>Saves a heatmap of the strategy's mean accuracy matrix, one labelled cell per entry (0 to 1 scale).</summary>
    public static void SaveMatrixHeatmap(StrategySummary strategy, string path)
    {
        ArgumentNullException.ThrowIfNull(strategy);
        double[,] matrix = strategy.MeanMatrix;
        int rows = matrix.GetLength(0);
        int columns = matrix.GetLength(1);
        var plot = new Plot();
        ScottPlot.Plottables.Heatmap heatmap = plot.Add.Heatmap(matrix);
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
        heatmap.ManualRange = new ScottPlot.Range(0, 1);
        plot.Add.ColorBar(heatmap);
        for (int row = 0; row < rows; row++)
        {
            for (int column = 0; column < columns; column++)
            {
                if (double.IsNaN(matrix[row, column]))
                {
                    continue;
                }

                // The heatmap draws row 0 at the top; cell centres sit on integer coordinates.
                ScottPlot.Plottables.Text label = plot.Add.Text(matrix[row, column].ToString("F2", System.Globalization.CultureInfo.InvariantCulture), column, rows - 1 - row);
                label.LabelFontColor = matrix[row, column] > 0.6 ? Colors.Black : Colors.White;
                label.LabelFontSize = 14;
                label.LabelAlignment = Alignment.MiddleCenter;
            }
        }

        plot.Axes.Bottom.SetTicks(
            Enumerable.Range(0, columns).Select(column => (double)column).ToArray(),
            Enumerable.Range(1, columns).Select(task => $"task {task}").ToArray());
        plot.Axes.Left.SetTicks(
            Enumerable.Range(0, rows).Select(row => (double)(rows - 1 - row)).ToArray(),
            Enumerable.Range(1, rows).Select(row => rows == 1 ? "end" : $"after {row}").ToArray());
        plot.Title($"{strategy.Strategy}: accuracy matrix");
        plot.XLabel("evaluated on");
        plot.YLabel("trained through");
        plot.SavePng(path, 520, 440);
    }

    /// <summary>Saves the mean accuracy over seen tasks against examples trained, one line per continual strategy.</summary>
    public static void SaveAccuracyOverStream(ExperimentSummary summary, string path)
    {
        ArgumentNullException.ThrowIfNull(summary);
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int index = 0;
        foreach (StrategySummary strategy in summary.Strategies)
        {
            Color color = palette.GetColor(index++);
            if (!strategy.HasForgetting)
            {
                ScottPlot.Plottables.HorizontalLine bound = plot.Add.HorizontalLine(strategy.AverageAccuracy.Mean, color: color, pattern: LinePattern.Dashed);
                bound.LegendText = $"{strategy.Strategy} (final)";
                continue;
            }

            double[] xs = strategy.MeanAccuracyOverStream.Select(point => (double)point.ExamplesTrained).ToArray();
            double[] ys = strategy.MeanAccuracyOverStream.Select(point => point.AverageAccuracy).ToArray();
            ScottPlot.Plottables.Scatter line = plot.Add.ScatterLine(xs, ys, color);
            line.LegendText = strategy.Strategy;
        }

        plot.Axes.SetLimitsY(0, 1);
        plot.Title("Mean accuracy over the tasks seen so far");
        plot.XLabel("training examples streamed");
        plot.YLabel("accuracy");
        plot.ShowLegend(Alignment.LowerLeft);
        plot.SavePng(path, 800, 480);
    }
}
