using ContinualServe.Learner.Evaluation;
using ContinualServe.Model.Store;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Evaluation;

public sealed class AccuracyMatrixTests
{
    private const double Tolerance = 1e-12;

    [Fact]
    public void ThreeTaskRowsAreLowerTriangular()
    {
        AccuracyMatrix matrix = ThreeTaskMatrix();

        matrix.Tasks.ShouldBe(new[] { 1, 2, 3 });
        matrix.RowCount.ShouldBe(3);
        matrix.Rows[0].ShouldBe(new[] { 0.9 });
        matrix.Rows[1].ShouldBe(new[] { 0.6, 0.8 });
        matrix.Rows[2].ShouldBe(new[] { 0.5, 0.7, 0.95 });
    }

    [Fact]
    public void ThreeTaskAverageAccuracy()
    {
        ThreeTaskMatrix().AverageAccuracy().ShouldBe((0.5 + 0.7 + 0.95) / 3, Tolerance);
    }

    [Fact]
    public void ThreeTaskBackwardTransfer()
    {
        // ((0.5 - 0.9) + (0.7 - 0.8)) / 2
        ThreeTaskMatrix().BackwardTransfer().ShouldBe(-0.25, Tolerance);
    }

    [Fact]
    public void ThreeTaskForgetting()
    {
        IReadOnlyDictionary<int, double> forgetting = ThreeTaskMatrix().Forgetting();

        forgetting.Count.ShouldBe(3);
        forgetting[1].ShouldBe(0.4, Tolerance);
        forgetting[2].ShouldBe(0.1, Tolerance);
        forgetting[3].ShouldBe(0, Tolerance);
    }

    [Fact]
    public void ForgettingUsesBestEarlierAccuracy()
    {
        // Task 1 peaks after task 2 (0.95), not when it was learned (0.7), so its forgetting is 0.95 - 0.6.
        var matrix = new AccuracyMatrix();
        matrix.Record(1, Accuracies((1, 0.7)));
        matrix.Record(2, Accuracies((1, 0.95), (2, 0.8)));
        matrix.Record(3, Accuracies((1, 0.6), (2, 0.8), (3, 0.9)));

        matrix.Forgetting()[1].ShouldBe(0.35, Tolerance);
        matrix.Forgetting()[2].ShouldBe(0, Tolerance);
    }

    [Fact]
    public void EmptyMatrixMetricsAreZero()
    {
        var matrix = new AccuracyMatrix();

        matrix.AverageAccuracy().ShouldBe(0);
        matrix.BackwardTransfer().ShouldBe(0);
        matrix.Forgetting().Count.ShouldBe(0);
    }

    [Fact]
    public void SingleTaskHasNoTransfer()
    {
        var matrix = new AccuracyMatrix();
        matrix.Record(1, Accuracies((1, 0.9)));

        matrix.AverageAccuracy().ShouldBe(0.9, Tolerance);
        matrix.BackwardTransfer().ShouldBe(0);
        matrix.Forgetting()[1].ShouldBe(0);
    }

    [Fact]
    public void SameTaskReplacesRunningRow()
    {
        var matrix = new AccuracyMatrix();
        matrix.Record(1, Accuracies((1, 0.9)));
        matrix.Record(2, Accuracies((1, 0.6), (2, 0.5)));
        matrix.Record(2, Accuracies((1, 0.7), (2, 0.8)));

        matrix.RowCount.ShouldBe(2);
        matrix.Tasks.ShouldBe(new[] { 1, 2 });
        matrix.Rows[1].ShouldBe(new[] { 0.7, 0.8 });
        matrix.BackwardTransfer().ShouldBe(0.7 - 0.9, Tolerance);
    }

    [Fact]
    public void RepeatedEarlierTaskThrows()
    {
        var matrix = new AccuracyMatrix();
        matrix.Record(1, Accuracies((1, 0.9)));
        matrix.Record(2, Accuracies((1, 0.6), (2, 0.8)));

        Should.Throw<InvalidOperationException>(() => matrix.Record(1, Accuracies((1, 0.9), (2, 0.7))));
        matrix.RowCount.ShouldBe(2);
    }

    [Fact]
    public void MissingAccuracyRecordsZero()
    {
        var matrix = new AccuracyMatrix();
        matrix.Record(1, Accuracies((1, 0.9)));
        matrix.Record(2, Accuracies((2, 0.8)));

        matrix.Rows[1].ShouldBe(new[] { 0.0, 0.8 });
    }

    [Fact]
    public void ColumnsFollowFirstAppearance()
    {
        var matrix = new AccuracyMatrix();
        matrix.Record(4, Accuracies((4, 0.9)));
        matrix.Record(2, Accuracies((4, 0.5), (2, 0.8)));

        matrix.Tasks.ShouldBe(new[] { 4, 2 });
        matrix.Rows[1].ShouldBe(new[] { 0.5, 0.8 });
        matrix.Forgetting()[4].ShouldBe(0.4, Tolerance);
    }

    [Fact]
    public void SummaryRoundTrips()
    {
        AccuracyMatrix original = ThreeTaskMatrix();

        AccuracyMatrix restored = AccuracyMatrix.FromSummary(original.ToSummary());

        restored.Tasks.ShouldBe(original.Tasks);
        restored.RowCount.ShouldBe(original.RowCount);
        for (int row = 0; row < original.RowCount; row++)
        {
            restored.Rows[row].ShouldBe(original.Rows[row]);
        }

        restored.AverageAccuracy().ShouldBe(original.AverageAccuracy());
        restored.BackwardTransfer().ShouldBe(original.BackwardTransfer());
    }

    [Fact]
    public void SummaryCarriesMetrics()
    {
        EvaluationSummary summary = ThreeTaskMatrix().ToSummary();

        summary.AverageAccuracy.ShouldBe((0.5 + 0.7 + 0.95) / 3, Tolerance);
        summary.BackwardTransfer.ShouldBe(-0.25, Tolerance);
        summary.Forgetting[1].ShouldBe(0.4, Tolerance);
    }

    [Fact]
    public void RestoredMatrixContinuesRunningRow()
    {
        AccuracyMatrix restored = AccuracyMatrix.FromSummary(ThreeTaskMatrix().ToSummary());

        restored.Record(3, Accuracies((1, 0.6), (2, 0.7), (3, 0.96)));
        restored.Record(4, Accuracies((1, 0.6), (2, 0.7), (3, 0.9), (4, 0.9)));

        restored.RowCount.ShouldBe(4);
        restored.Rows[2].ShouldBe(new[] { 0.6, 0.7, 0.96 });
        Should.Throw<InvalidOperationException>(() => restored.Record(2, Accuracies((2, 0.7))));
    }

    [Fact]
    public void NullSummaryGivesEmptyMatrix()
    {
        AccuracyMatrix.FromSummary(null).RowCount.ShouldBe(0);
    }

    [Fact]
    public void MismatchedSummaryIsRejected()
    {
        EvaluationSummary summary = ThreeTaskMatrix().ToSummary();

        Should.Throw<InvalidDataException>(() => AccuracyMatrix.FromSummary(summary with { Tasks = [1, 2] }));
        Should.Throw<InvalidDataException>(() => AccuracyMatrix.FromSummary(summary with { AccuracyMatrix = [[0.9], [0.6], [0.5, 0.7, 0.95]] }));
    }

    private static AccuracyMatrix ThreeTaskMatrix()
    {
        var matrix = new AccuracyMatrix();
        matrix.Record(1, Accuracies((1, 0.9)));
        matrix.Record(2, Accuracies((1, 0.6), (2, 0.8)));
        matrix.Record(3, Accuracies((1, 0.5), (2, 0.7), (3, 0.95)));
        return matrix;
    }

    private static Dictionary<int, double> Accuracies(params (int Task, double Accuracy)[] entries) =>
        entries.ToDictionary(entry => entry.Task, entry => entry.Accuracy);
}
