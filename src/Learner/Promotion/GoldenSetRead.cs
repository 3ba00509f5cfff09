using ContinualServe.Model.Store;

namespace ContinualServe.Learner.Promotion;

/// <summary>
/// The golden set as <see cref="PromotionGate.ReadGoldenSet"/> found it: the parsed set, none (both null: no file), or the
/// reason it cannot be used (the file cannot be read, cannot be parsed or does not fit the model).
/// </summary>
/// <param name="Set">The golden set, or null when there is none or it cannot be used.</param>
/// <param name="Failure">Why the golden set cannot be used, or null when it can or there is none.</param>
public readonly record struct GoldenSetRead(GoldenSet? Set, Exception? Failure)
{
    /// <summary>Whether a golden set file exists but cannot be used.</summary>
    public bool IsUnusable => Failure is not null;
}
