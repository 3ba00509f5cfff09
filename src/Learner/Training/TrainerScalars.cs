using TorchSharp;

namespace ContinualServe.Learner.Training;

/// <summary>
/// The constant Scalars of a trainer's loss, created once and disposed with the trainer. TorchSharp 0.107 hands a
/// Scalar to native code by raw handle, so an implicitly converted one can be finalized during the call; fields
/// keep these alive for as long as the trainer exists. Tensor operators such as + and − create such a Scalar
/// (their alpha of 1) on every call, so the trainer calls add with one of these instead.
/// </summary>
internal sealed class TrainerScalars : IDisposable
{
    public TrainerScalars(TrainerOptions options)
    {
        LogitWeight = options.EffectiveLogitWeight.ToScalar();
        LabelWeight = options.EffectiveLabelWeight.ToScalar();
        DistillationWeight = options.DistillationWeight.ToScalar();
        Temperature = options.DistillationTemperature.ToScalar();
        TemperatureSquared = (options.DistillationTemperature * options.DistillationTemperature).ToScalar();
        ProbabilityFloor = 1e-8.ToScalar();
        MaskedLogit = (-1e9).ToScalar();
        True = true.ToScalar();
        MinusOne = (-1.0).ToScalar();
    }

    public Scalar LogitWeight { get; }

    public Scalar LabelWeight { get; }

    public Scalar DistillationWeight { get; }

    public Scalar Temperature { get; }

    public Scalar TemperatureSquared { get; }

    public Scalar ProbabilityFloor { get; }

    /// <summary>Logit given to classes that a loss must ignore; its softmax weight underflows to 0.</summary>
    public Scalar MaskedLogit { get; }

    public Scalar True { get; }

    public Scalar MinusOne { get; }

    public void Dispose()
    {
        LogitWeight.Dispose();
        LabelWeight.Dispose();
        DistillationWeight.Dispose();
        Temperature.Dispose();
        TemperatureSquared.Dispose();
        ProbabilityFloor.Dispose();
        MaskedLogit.Dispose();
        True.Dispose();
        MinusOne.Dispose();
    }
}
