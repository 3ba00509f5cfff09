namespace ContinualServe.Learner.Checkpoints;

/// <summary>
/// What the learner does at start when a partition has another record before the checkpoint's offset than the one
/// the checkpoint recorded, because the topic was deleted and created again or the learner now reads another cluster.
/// </summary>
public enum TopicMismatchAction
{
    /// <summary>The start fails with an error that names each such partition, and the process exits with code 2.</summary>
    Stop,

    /// <summary>Each such partition is read from its oldest retained record, and a warning is logged for it.</summary>
    ResetToEarliest,
}
