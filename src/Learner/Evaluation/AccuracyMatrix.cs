using ContinualServe.Model.Store;

namespace ContinualServe.Learner.Evaluation;

/// <summary>
/// The continual-learning accuracy matrix R: row i contains the accuracy on every task seen so far after
/// training on the i-th task; column j is the j-th task in order of first appearance. Rows are lower
/// triangular (row i has i + 1 entries). While a task is still streaming its row is the running one:
/// recording the same task again replaces the last row, and a new task appends a row.
/// </summary>
public sealed class AccuracyMatrix
{
    private readonly List<int> tasks = [];
    private readonly List<double[]> rows = [];

    public IReadOnlyList<int> Tasks => tasks;

    public IReadOnlyList<IReadOnlyList<double>> Rows => rows;

    public int RowCount => rows.Count;

    /// <summary>Records the accuracies after training on <paramref name="trainedTask"/>, one per task seen so far.</summary>
    public void Record(int trainedTask, IReadOnlyDictionary<int, double> accuracyByTask)
    {
        ArgumentNullException.ThrowIfNull(accuracyByTask);
        bool sameTask = tasks.Count > 0 && tasks[^1] == trainedTask;
        if (!sameTask)
        {
            if (tasks.Contains(trainedTask))
            {
                throw new InvalidOperationException($"Task {trainedTask} was already learned; tasks must arrive in order and not repeat.");
            }

            tasks.Add(trainedTask);
        }

        double[] row = tasks.Select(task => accuracyByTask.TryGetValue(task, out double value) ? value : 0).ToArray();
        if (sameTask)
        {
            rows[^1] = row;
        }
        else
        {
            rows.Add(row);
        }
    }

    /// <summary>ACC = mean over j of R[T][j], T being the last row.</summary>
    public double AverageAccuracy() => rows.Count == 0 ? 0 : rows[^1].Average();

    /// <summary>BWT = mean over j &lt; T of (R[T][j] − R[j][j]) (Lopez-Paz and Ranzato, 2017); 0 with one task.</summary>
    public double BackwardTransfer()
    {
        int last = rows.Count - 1;
        if (last < 1)
        {
            return 0;
        }

        return Enumerable.Range(0, last).Average(j => rows[last][j] - rows[j][j]);
    }

    /// <summary>
    /// Forgetting of each earlier task j: max over l &lt; T of R[l][j], minus R[T][j] (Chaudhry et al., 2018).
    /// The current task has no earlier row and maps to 0.
    /// </summary>
    public IReadOnlyDictionary<int, double> Forgetting()
    {
        var forgetting = new Dictionary<int, double>();
        int last = rows.Count - 1;
        for (int j = 0; j <= last; j++)
        {
            double best = double.NegativeInfinity;
            for (int l = j; l < last; l++)
            {
                best = Math.Max(best, rows[l][j]);
            }

            forgetting[tasks[j]] = j == last ? 0 : best - rows[last][j];
        }

        return forgetting;
    }

    /// <summary>Rebuilds the matrix from a manifest's summary, e.g. after a restart.</summary>
    public static AccuracyMatrix FromSummary(EvaluationSummary? summary)
    {
        var matrix = new AccuracyMatrix();
        if (summary is null)
        {
            return matrix;
        }

        if (summary.Tasks.Count != summary.AccuracyMatrix.Count)
        {
            throw new InvalidDataException(
                $"The evaluation summary lists {summary.Tasks.Count} tasks but {summary.AccuracyMatrix.Count} matrix rows.");
        }

        for (int row = 0; row < summary.AccuracyMatrix.Count; row++)
        {
            if (summary.AccuracyMatrix[row].Count != row + 1)
            {
                throw new InvalidDataException(
                    $"Row {row} of the accuracy matrix has {summary.AccuracyMatrix[row].Count} entries; expected {row + 1}.");
            }

            matrix.tasks.Add(summary.Tasks[row]);
            matrix.rows.Add(summary.AccuracyMatrix[row].ToArray());
        }

        return matrix;
    }

    public EvaluationSummary ToSummary() => new()
    {
        Tasks = tasks.ToArray(),
        AccuracyMatrix = rows.Select(row => (IReadOnlyList<double>)row.ToArray()).ToArray(),
        AverageAccuracy = AverageAccuracy(),
        BackwardTransfer = BackwardTransfer(),
        Forgetting = Forgetting(),
    };
}
