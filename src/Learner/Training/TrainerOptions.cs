using System.ComponentModel.DataAnnotations;

namespace ContinualServe.Learner.Training;

/// <summary>Replay strategy: which replay loss terms the trainer adds to the cross-entropy on new examples.</summary>
public enum ReplayStrategy
{
    /// <summary>Fine-tuning on new examples only; forgets earlier tasks.</summary>
    Naive,

    /// <summary>Experience replay: cross-entropy on replayed labels (weight <see cref="TrainerOptions.ReplayLabelWeight"/>).</summary>
    ExperienceReplay,

    /// <summary>Dark experience replay: MSE to the logits stored with replayed examples (weight <see cref="TrainerOptions.ReplayLogitWeight"/>).</summary>
    Der,

    /// <summary>DER++: both replay terms.</summary>
    DerPlusPlus,
}

/// <summary>Hyperparameters of the continual trainer. Defaults are a DER++ setting for Split Fashion-MNIST.</summary>
public sealed class TrainerOptions
{
    public ReplayStrategy Strategy { get; set; } = ReplayStrategy.DerPlusPlus;

    /// <summary>New examples per gradient step.</summary>
    [Range(1, 65_536)]
    public int BatchSize { get; set; } = 32;

    /// <summary>Replayed examples drawn per loss term per step.</summary>
    [Range(1, 65_536)]
    public int ReplayBatchSize { get; set; } = 32;

    /// <summary>Replay buffer capacity in examples.</summary>
    [Range(0, 10_000_000)]
    public int ReplayCapacity { get; set; } = 500;

    /// <summary>Adam learning rate.</summary>
    [Range(1e-7, 1.0)]
    public double LearningRate { get; set; } = 1e-3;

    /// <summary>Weight of the MSE between current logits and stored logits (DER's alpha).</summary>
    [Range(0.0, 100.0)]
    public double ReplayLogitWeight { get; set; } = 0.5;

    /// <summary>Weight of the cross-entropy on replayed labels (DER++'s beta).</summary>
    [Range(0.0, 100.0)]
    public double ReplayLabelWeight { get; set; } = 1.0;

    /// <summary>Gradients are clipped to this global L2 norm; 0 disables clipping.</summary>
    [Range(0.0, 1e6)]
    public double GradientClipNorm { get; set; } = 10.0;

    /// <summary>Seed of weight initialization and replay sampling.</summary>
    public int Seed { get; set; } = 1;

    public bool UsesReplay => Strategy != ReplayStrategy.Naive && ReplayCapacity > 0;

    public double EffectiveLogitWeight => Strategy is ReplayStrategy.Der or ReplayStrategy.DerPlusPlus ? ReplayLogitWeight : 0;

    public double EffectiveLabelWeight => Strategy is ReplayStrategy.ExperienceReplay or ReplayStrategy.DerPlusPlus ? ReplayLabelWeight : 0;
}
