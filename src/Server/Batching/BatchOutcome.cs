namespace ContinualServe.Server.Batching;

/// <summary>How a queued request ended.</summary>
public enum BatchStatus
{
    Completed,
    QueueFull,
    DeadlineExceeded,
    NoModel,
    VersionNotLoaded,
    ShuttingDown,

    /// <summary>The live model's feature count changed while the request waited, so its rows no longer fit the input.</summary>
    InputShapeChanged,
}

/// <summary>Result of one request: the version that computed it and its class probabilities, row by row.</summary>
public readonly record struct BatchOutcome(BatchStatus Status, long Version, float[]? Probabilities, int ClassCount);
