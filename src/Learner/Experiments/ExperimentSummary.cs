namespace ContinualServe.Learner.Experiments;

/// <summary>Results of every run of an experiment, aggregated per strategy over seeds.</summary>
public sealed record ExperimentSummary(ExperimentOptions Options, IReadOnlyList<StrategySummary> Strategies, DateTimeOffset FinishedAt)
{
    public static ExperimentSummary From(ExperimentOptions options, IReadOnlyList<ExperimentResult> results)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(results);
        StrategySummary[] strategies = results
            .GroupBy(result => result.Strategy)
            .Select(group => StrategySummary.From(group.Key, group.ToArray()))
            .ToArray();
        return new ExperimentSummary(options, strategies, DateTimeOffset.UtcNow);
    }
}

/// <summary>
/// One strategy over its seeds: mean and sample standard deviation of ACC, BWT, mean forgetting (over all tasks but
/// the last) and forgetting of task 1, the accuracy matrix averaged over seeds, and the mean accuracy over the stream.
/// </summary>
public sealed record StrategySummary(
    string Strategy,
    IReadOnlyList<ExperimentResult> Runs,
    MeanDeviation AverageAccuracy,
    MeanDeviation BackwardTransfer,
    MeanDeviation MeanForgetting,
    MeanDeviation FirstTaskForgetting,
    double[,] MeanMatrix,
    IReadOnlyList<StreamPoint> MeanAccuracyOverStream,
    TimeSpan MeanDuration)
{
    /// <summary>False for the joint bound, which has no task order and so no BWT or forgetting.</summary>
    public bool HasForgetting => Runs[0].Matrix is not null;

    public static StrategySummary From(string strategy, IReadOnlyList<ExperimentResult> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        int columns = runs[0].FinalAccuracies.Count;
        double[,] matrix;
        if (runs[0].Matrix is null)
        {
            matrix = new double[1, columns];
            for (int column = 0; column < columns; column++)
            {
                matrix[0, column] = runs.Average(run => run.FinalAccuracies[column]);
            }
        }
        else
        {
            matrix = MeanMatrixOf(runs, columns);
        }

        int pointCount = runs.Min(run => run.AccuracyOverStream.Count);
        StreamPoint[] curve = Enumerable.Range(0, pointCount)
            .Select(index => new StreamPoint(
                runs[0].AccuracyOverStream[index].ExamplesTrained,
                runs.Average(run => run.AccuracyOverStream[index].AverageAccuracy)))
            .ToArray();

        return new StrategySummary(
            strategy,
            runs,
            MeanDeviation.Of(runs.Select(run => run.AverageAccuracy)),
            MeanDeviation.Of(runs.Select(run => run.Matrix?.BackwardTransfer() ?? 0)),
            MeanDeviation.Of(runs.Select(MeanForgettingOf)),
            MeanDeviation.Of(runs.Select(run => run.Matrix is null ? 0 : run.Matrix.Forgetting().GetValueOrDefault(run.Matrix.Tasks[0]))),
            matrix,
            curve,
            TimeSpan.FromSeconds(runs.Average(run => run.Duration.TotalSeconds)));
    }

    private static double[,] MeanMatrixOf(IReadOnlyList<ExperimentResult> runs, int columns)
    {
        int rows = runs[0].Matrix!.RowCount;
        var matrix = new double[rows, columns];
        for (int row = 0; row < rows; row++)
        {
            for (int column = 0; column < columns; column++)
            {
                matrix[row, column] = column < runs[0].Matrix!.Rows[row].Count
                    ? runs.Average(run => run.Matrix!.Rows[row][column])
                    : double.NaN;
            }
        }

        return matrix;
    }

    private static double MeanForgettingOf(ExperimentResult run)
    {
        if (run.Matrix is null)
        {
            return 0;
        }

        IReadOnlyDictionary<int, double> forgetting = run.Matrix.Forgetting();
        int[] earlier = run.Matrix.Tasks.Take(run.Matrix.Tasks.Count - 1).ToArray();
        return earlier.Length == 0 ? 0 : earlier.Average(task => forgetting[task]);
    }
}

/// <summary>Mean and sample standard deviation (n − 1; NaN for one value, where it is undefined).</summary>
public readonly record struct MeanDeviation(double Mean, double StandardDeviation)
{
    public static MeanDeviation Of(IEnumerable<double> values)
    {
        double[] array = values.ToArray();
        double mean = array.Average();
        double variance = array.Length > 1 ? array.Sum(value => (value - mean) * (value - mean)) / (array.Length - 1) : double.NaN;
        return new MeanDeviation(mean, Math.Sqrt(variance));
    }

    public override string ToString() => double.IsNaN(StandardDeviation)
        ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Mean:F3} (one seed)")
        : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Mean:F3} ± {StandardDeviation:F3}");
}
