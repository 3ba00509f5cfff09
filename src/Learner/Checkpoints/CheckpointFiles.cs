using ContinualServe.Learner.Data;
using ContinualServe.Learner.Replay;
using ContinualServe.Learner.Training;

namespace ContinualServe.Learner.Checkpoints;

/// <summary>
/// A learner checkpoint's files in memory, read on a thread-pool task so that the learner thread only deserializes
/// them: the weights, the optimizer state, the replay buffer, the LwF teacher and the holdout sets.
/// </summary>
internal sealed class CheckpointFiles : IDisposable
{
    public required NativeBufferStream Weights { get; init; }

    /// <summary>The optimizer file, or null when <see cref="OptimizerProblem"/> records why it does not fit the trainer.</summary>
    public OptimizerStateFile? Optimizer { get; set; }

    public InvalidDataException? OptimizerProblem { get; set; }

    public List<ReplayExample> Replay { get; set; } = [];

    /// <summary>The teacher's weights file, or null when the checkpoint has none.</summary>
    public NativeBufferStream? Teacher { get; set; }

    public List<LabeledExample> Holdouts { get; set; } = [];

    public void Dispose()
    {
        Weights.Dispose();
        Optimizer?.Dispose();
        Teacher?.Dispose();
    }
}
