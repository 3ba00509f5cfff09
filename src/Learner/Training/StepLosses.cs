namespace ContinualServe.Learner.Training;

/// <summary>Loss components of one training step; <see cref="Skipped"/> when the loss was not finite and no update was made.</summary>
public readonly record struct StepLosses(double New, double ReplayLogits, double ReplayLabels, double Total, bool Skipped)
{
    /// <summary>LwF distillation loss before its weight; 0 without a teacher.</summary>
    public double Distillation { get; init; }

    /// <summary>
    /// Replay examples removed from the buffer after this step, because their own replay loss was not finite; 0 for
    /// a step whose replay losses were finite.
    /// </summary>
    public int DroppedReplayExamples { get; init; }
}
