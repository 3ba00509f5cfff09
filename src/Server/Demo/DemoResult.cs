using ContinualServe.Model.Store;

namespace ContinualServe.Server.Demo;

/// <summary>Outcome of a demo run: the learner's final evaluation and what the inference clients saw.</summary>
public sealed record DemoResult
{
    public required EvaluationSummary Evaluation { get; init; }

    /// <summary>Accuracy of the final version on each task's classes in the held-out test set.</summary>
    public required IReadOnlyDictionary<int, double> TestAccuracyByTask { get; init; }

    public required long FinalVersion { get; init; }

    public required long FirstVersion { get; init; }

    /// <summary>Newest version that served an inference request during the run.</summary>
    public required long NewestServedVersion { get; init; }

    public required long ExamplesProduced { get; init; }

    public required long ExamplesTrained { get; init; }

    public required long ExamplesLost { get; init; }

    /// <summary>Candidate versions that the promotion gate rejected. Their rounds' examples are discarded, not counted as trained.</summary>
    public long CandidatesRejected { get; init; }

    public required long RequestsSucceeded { get; init; }

    public required long RequestsFailed { get; init; }

    public required long RequestsCorrect { get; init; }

    public required TimeSpan Duration { get; init; }

    public required string RunDirectory { get; init; }

    /// <summary>Names the run in reports that compare runs, e.g. the replay strategy.</summary>
    public string Label { get; init; } = "";

    /// <summary>Every version the learner published during the run, oldest first.</summary>
    public IReadOnlyList<StreamPoint> Stream { get; init; } = [];
}
