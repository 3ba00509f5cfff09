using System.ComponentModel.DataAnnotations;

namespace ContinualServe.Learner.Checkpoints;

/// <summary>Settings of the learner checkpoint and of the guard against diverged training.</summary>
public sealed class CheckpointOptions
{
    /// <summary>Directory of the learner checkpoints; empty means "learner-checkpoint" inside the model store directory.</summary>
    public string Directory { get; set; } = "";

    /// <summary>
    /// Checkpoints kept on disk: the newest ones, and the newest checkpoint of as many of the most recently checkpointed
    /// model versions, so at most twice this number. The newest intact one is used on restart.
    /// </summary>
    [Range(1, 100)]
    public int RetainedCheckpoints { get; set; } = 2;

    /// <summary>
    /// Appends the id of every example passed to a training step to trained-ids.log beside the checkpoints.
    /// The log is cut back to the checkpoint's length on restart, so it lists each trained example once.
    /// </summary>
    public bool WriteTrainingLog { get; set; }

    /// <summary>Consecutive training steps with a non-finite loss after which the learner rolls back to its checkpoint.</summary>
    [Range(1, 1_000_000)]
    public int MaxConsecutiveNonFiniteSteps { get; set; } = 5;

    /// <summary>Rollbacks without a published round in between after which the learner stops training and reports itself diverged.</summary>
    [Range(1, 1000)]
    public int MaxRollbacks { get; set; } = 3;

    public string ResolveDirectory(string storeDirectory) =>
        string.IsNullOrEmpty(Directory) ? Path.Combine(storeDirectory, "learner-checkpoint") : Directory;
}
