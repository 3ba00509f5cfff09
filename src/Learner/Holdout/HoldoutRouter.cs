namespace ContinualServe.Learner.Holdout;

/// <summary>
/// Sends a fixed fraction of examples to the holdout set by a hash of the example id, so the split is
/// the same on every run, every restart and every replica, and a holdout example is never trained on.
/// </summary>
public sealed class HoldoutRouter
{
    private const ulong Buckets = 10_000;
    private readonly ulong threshold;

    public HoldoutRouter(double holdoutFraction = 0.1)
    {
        if (!(holdoutFraction >= 0 && holdoutFraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(holdoutFraction), holdoutFraction, "The holdout fraction must be in [0, 1).");
        }

        HoldoutFraction = holdoutFraction;
        threshold = (ulong)Math.Round(holdoutFraction * Buckets);
    }

    public double HoldoutFraction { get; }

    public bool IsHoldout(string exampleId) => IsHoldout(ExampleIdHash.Of(exampleId));

    /// <summary>Routes by an id hash that the caller computed, so that its sample key can be reused without hashing again.</summary>
    public bool IsHoldout(ExampleIdHash idHash) => idHash.RoutingKey % Buckets < threshold;
}
