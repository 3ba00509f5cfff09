using System.ComponentModel.DataAnnotations;

namespace ContinualServe.Learner.Promotion;

/// <summary>Limits a candidate version must meet before it replaces the live one. Accuracies are fractions from 0 to 1.</summary>
public sealed class PromotionOptions
{
    /// <summary>When false every candidate is promoted (and still counted and logged).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Largest forgetting allowed on any seen task: the task's best accuracy in an earlier row of the accuracy matrix
    /// minus the candidate's accuracy on it. Class-incremental learning always forgets some, so this is a guard
    /// against collapse, not a target.
    /// </summary>
    [Range(0.0, 1.0)]
    public double MaxForgetting { get; set; } = 0.5;

    /// <summary>Largest drop of the candidate's average accuracy over seen tasks below the live version's.</summary>
    [Range(0.0, 1.0)]
    public double MaxAverageAccuracyDrop { get; set; } = 0.2;

    /// <summary>
    /// Lowest average accuracy allowed: over the live version's tasks, or over every seen task when no version is live.
    /// The default, 0, turns the floor off. Without it or a golden set, nothing stops the first version of a model
    /// that gets every holdout example wrong, and later versions are compared only with that one.
    /// </summary>
    [Range(0.0, 1.0)]
    public double MinAverageAccuracy { get; set; }

    /// <summary>Lowest accuracy allowed on the operator's golden set; checked only when a golden set was uploaded.</summary>
    [Range(0.0, 1.0)]
    public double MinGoldenAccuracy { get; set; }
}
