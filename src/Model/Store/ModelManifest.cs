using System.Text.Json;

namespace ContinualServe.Model.Store;

/// <summary>Metadata of one immutable model version, stored as manifest.json beside its weights.</summary>
public sealed record ModelManifest
{
    public string ModelName { get; init; } = "";

    public long Version { get; init; }

    public long? ParentVersion { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>Lower-case hex SHA-256 of the weights file, checked on every load.</summary>
    public string WeightsSha256 { get; init; } = "";

    public long WeightsBytes { get; init; }

    /// <summary>Number of training examples the weights have seen since the first version.</summary>
    public long ExamplesTrained { get; init; }

    /// <summary>Next offset to consume on each partition: the stream position these weights include.</summary>
    public IReadOnlyList<TrainingOffset> TrainingOffsets { get; init; } = [];

    public EvaluationSummary? Evaluation { get; init; }

    public static JsonSerializerOptions JsonOptions => ModelSpec.JsonOptions;
}

public sealed record TrainingOffset(string Topic, int Partition, long Offset);

/// <summary>
/// Continual-learning evaluation of a version. <see cref="AccuracyMatrix"/>[i][j] is the accuracy on task
/// <see cref="Tasks"/>[j]'s holdout after training on task <see cref="Tasks"/>[i]; the last row is the current one.
/// </summary>
public sealed record EvaluationSummary
{
    public IReadOnlyList<int> Tasks { get; init; } = [];

    public IReadOnlyList<IReadOnlyList<double>> AccuracyMatrix { get; init; } = [];

    public double AverageAccuracy { get; init; }

    public double BackwardTransfer { get; init; }

    /// <summary>Forgetting per task id, the maximum earlier accuracy minus the current one.</summary>
    public IReadOnlyDictionary<int, double> Forgetting { get; init; } = new Dictionary<int, double>();

    /// <summary>Accuracy on the operator's golden set when the promotion gate reviewed the version, or null without a golden set.</summary>
    public double? GoldenSetAccuracy { get; init; }
}
