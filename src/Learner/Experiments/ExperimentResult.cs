using ContinualServe.Learner.Evaluation;

namespace ContinualServe.Learner.Experiments;

/// <summary>
/// One run of one strategy with one seed: the accuracy matrix of a continual run (null for the joint bound, which
/// has no task order), the final accuracy on every task, and the running average accuracy along the stream.
/// </summary>
public sealed record ExperimentResult(
    string Strategy,
    int Seed,
    AccuracyMatrix? Matrix,
    IReadOnlyList<double> FinalAccuracies,
    IReadOnlyList<StreamPoint> AccuracyOverStream,
    TimeSpan Duration)
{
    /// <summary>Final average accuracy over all tasks (ACC).</summary>
    public double AverageAccuracy => FinalAccuracies.Average();
}

/// <summary>Mean accuracy over the tasks seen so far after <paramref name="ExamplesTrained"/> training examples.</summary>
public readonly record struct StreamPoint(long ExamplesTrained, double AverageAccuracy);
