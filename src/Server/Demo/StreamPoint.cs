using ContinualServe.Model.Store;

namespace ContinualServe.Server.Demo;

/// <summary>One published version during a demo run: how far into the stream it was, and its holdout accuracies.</summary>
public sealed record StreamPoint(long Version, long ExamplesTrained, double AverageAccuracy, IReadOnlyDictionary<int, double> AccuracyByTask)
{
    /// <summary>Reads the point from a version's manifest (its evaluation's last matrix row).</summary>
    public static StreamPoint From(ModelManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var accuracyByTask = new Dictionary<int, double>();
        EvaluationSummary? evaluation = manifest.Evaluation;
        if (evaluation is not null && evaluation.AccuracyMatrix.Count > 0)
        {
            IReadOnlyList<double> lastRow = evaluation.AccuracyMatrix[^1];
            for (int column = 0; column < lastRow.Count && column < evaluation.Tasks.Count; column++)
            {
                accuracyByTask[evaluation.Tasks[column]] = lastRow[column];
            }
        }

        return new StreamPoint(manifest.Version, manifest.ExamplesTrained, evaluation?.AverageAccuracy ?? 0, accuracyByTask);
    }
}
