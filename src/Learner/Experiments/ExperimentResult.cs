using ContinualServe.Learner.Evaluation;

namespace ContinualServe.Learner.Experiments;

/// <summary>One run of one strategy with one seed.</summary>
public sealed record ExperimentResult(
    string Strategy,
    int Seed,
    AccuracyMatrix Matrix,
    IReadOnlyList<StreamPoint> AccuracyOverStream,
    TimeSpan Duration)
{
    /// <summary>Final average accuracy over all tasks (ACC).</summary>
    public double AverageAccuracy => Matrix.AverageAccuracy();
}

/// <summary>Mean accuracy over the tasks seen so far after <paramref name="ExamplesTrained"/> training examples.</summary>
public readonly record struct StreamPoint(long ExamplesTrained, double AverageAccuracy);
