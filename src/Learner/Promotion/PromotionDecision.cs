namespace ContinualServe.Learner.Promotion;

/// <summary>
/// The gate's verdict on one candidate with the numbers behind it. <see cref="Reasons"/> lists every limit the
/// candidate broke and is empty when it was promoted.
/// </summary>
public sealed record PromotionDecision(
    bool Promoted,
    IReadOnlyList<string> Reasons,
    double AverageAccuracy,
    double? LiveAverageAccuracy,
    double MaxForgetting,
    int? MaxForgettingTask,
    double? GoldenAccuracy)
{
    /// <summary>Short reason labels (forgetting, accuracy_drop, accuracy_floor, golden_set, golden_set_unreadable); empty when promoted.</summary>
    public IReadOnlyList<string> ReasonKinds { get; init; } = [];

    /// <summary>The label of <c>continualserve_promotions_total</c>: promoted or rejected.</summary>
    public string Label => Promoted ? "promoted" : "rejected";
}
