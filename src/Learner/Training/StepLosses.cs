namespace ContinualServe.Learner.Training;

/// <summary>Loss components of one training step; <see cref="Skipped"/> when the loss was not finite and no update was made.</summary>
public readonly record struct StepLosses(double New, double ReplayLogits, double ReplayLabels, double Total, bool Skipped)
{
    /// <summary>LwF distillation loss before its weight; 0 without a teacher.</summary>
    public double Distillation { get; init; }
}
