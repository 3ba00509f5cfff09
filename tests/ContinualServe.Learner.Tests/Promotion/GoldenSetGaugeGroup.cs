using Xunit;

namespace ContinualServe.Learner.Tests.Promotion;

/// <summary>
/// Test classes whose learners evaluate a golden set, so each of them sets the process-wide golden-set accuracy gauge.
/// Their tests run one at a time, because LearnerPromotionTests asserts on the gauge after its learner stops.
/// </summary>
[CollectionDefinition(Name)]
public sealed class GoldenSetGaugeGroup
{
    public const string Name = "golden-set accuracy gauge";
}
