using System.Globalization;
using ContinualServe.Model.Store;

namespace ContinualServe.Model.Telemetry;

/// <summary>Exports an evaluation summary's accuracy matrix as <c>continualserve_accuracy_matrix</c>.</summary>
public static class EvaluationMetrics
{
    /// <summary>
    /// Sets one series per cell (after_task, task) of <paramref name="summary"/>'s matrix. The matrix only grows
    /// (rows are replaced while a task streams, never removed), so earlier cells never go stale.
    /// </summary>
    public static void PublishAccuracyMatrix(EvaluationSummary summary)
    {
        ArgumentNullException.ThrowIfNull(summary);
        for (int row = 0; row < summary.AccuracyMatrix.Count && row < summary.Tasks.Count; row++)
        {
            string afterTask = summary.Tasks[row].ToString(CultureInfo.InvariantCulture);
            IReadOnlyList<double> cells = summary.AccuracyMatrix[row];
            for (int column = 0; column < cells.Count && column < summary.Tasks.Count; column++)
            {
                string task = summary.Tasks[column].ToString(CultureInfo.InvariantCulture);
                ContinualServeMetrics.AccuracyMatrix.WithLabels(afterTask, task).Set(cells[column]);
            }
        }
    }
}
