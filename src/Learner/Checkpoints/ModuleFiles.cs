namespace ContinualServe.Learner.Checkpoints;

/// <summary>
/// The TorchSharp files of a learner checkpoint, serialized on the learner thread so that a thread-pool task writes
/// them: the weights, the optimizer state and the LwF teacher. It is disposed after the write: by the learner thread
/// when it waits for the write, by the round-write task for a promoted round.
/// </summary>
internal sealed class ModuleFiles : IDisposable
{
    /// <summary>The weights file, or null when the weights are written from a copy of the module.</summary>
    public NativeBufferStream? Weights { get; init; }

    /// <summary>The optimizer file, or null when the checkpoint's optimizer file comes from elsewhere.</summary>
    public IFileImage? Optimizer { get; set; }

    /// <summary>The teacher's weights file, or null when there is no teacher.</summary>
    public NativeBufferStream? Teacher { get; set; }

    /// <summary>Writes the files into the checkpoint directory <paramref name="directory"/>, without flushing them to disk.</summary>
    public void WriteTo(string directory)
    {
        Weights?.WriteFile(Path.Combine(directory, LearnerCheckpoint.WeightsFileName));
        Optimizer?.WriteFile(Path.Combine(directory, LearnerCheckpoint.OptimizerFileName));
        Teacher?.WriteFile(Path.Combine(directory, LearnerCheckpoint.TeacherFileName));
    }

    public void Dispose()
    {
        Weights?.Dispose();
        Optimizer?.Dispose();
        Teacher?.Dispose();
    }
}
