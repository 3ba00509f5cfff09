using System.ComponentModel.DataAnnotations;
using ContinualServe.Learner.Replay;

namespace ContinualServe.Learner.Training;

/// <summary>
/// Training strategy: which replay loss terms the trainer adds to the cross-entropy on new examples, or, for
/// <see cref="Analytic"/>, a head fitted in closed form in place of gradient steps.
/// </summary>
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

    /// <summary>
    /// Exemplar-free: the hidden layers keep their initial random weights, and the head is the ridge regression
    /// from their output to one-hot labels over every example seen (weight <see cref="TrainerOptions.AnalyticRegularization"/>).
    /// Stores no examples and keeps every fitted example's full weight, but its features never adapt to the data. MLP only.
    /// </summary>
    Analytic,
}

/// <summary>Hyperparameters of the continual trainer. Defaults are a DER++ setting for Split Fashion-MNIST.</summary>
public sealed class TrainerOptions
{
    public ReplayStrategy Strategy { get; set; } = ReplayStrategy.DerPlusPlus;

    /// <summary>
    /// Name of a strategy of <c>continualserve experiment</c> (for example <c>best</c>) whose settings fill every
    /// setting it defines that configuration leaves unset. Null or empty sets nothing.
    /// </summary>
    public string? Preset { get; set; }

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

    /// <summary>
    /// Multiplies the learning rate of every layer below the classifier head. Below 1 the features that earlier
    /// tasks rely on drift more slowly than the head, which lowers forgetting. A value of 1 trains all layers alike.
    /// </summary>
    [Range(0.0, 10.0)]
    public double FeatureLearningRateScale { get; set; } = 1.0;

    /// <summary>Weight of the MSE between current logits and stored logits (DER's alpha).</summary>
    [Range(0.0, 100.0)]
    public double ReplayLogitWeight { get; set; } = 0.5;

    /// <summary>Weight of the cross-entropy on replayed labels (DER++'s beta).</summary>
    [Range(0.0, 100.0)]
    public double ReplayLabelWeight { get; set; } = 1.0;

    /// <summary>Gradients are clipped to this global L2 norm; 0 disables clipping.</summary>
    [Range(0.0, 1e6)]
    public double GradientClipNorm { get; set; } = 10.0;

    /// <summary>How the replay buffer chooses which examples to keep.</summary>
    public ReplayBufferKind BufferKind { get; set; } = ReplayBufferKind.Reservoir;

    /// <summary>
    /// Weight of LwF distillation (Li and Hoiem, 2016) toward the teacher, a frozen copy of the weights taken when
    /// the stream moves to a new task; 0 disables it. Combines with any replay strategy.
    /// </summary>
    [Range(0.0, 100.0)]
    public double DistillationWeight { get; set; }

    /// <summary>Softmax temperature of LwF distillation; the loss is scaled by its square.</summary>
    [Range(0.1, 100.0)]
    public double DistillationTemperature { get; set; } = 2.0;

    /// <summary>Gradient steps taken on each incoming batch, each with fresh replay samples.</summary>
    [Range(1, 100)]
    public int StepsPerBatch { get; set; } = 1;

    /// <summary>
    /// Asymmetric cross-entropy on new examples (ER-ACE, Caccia et al., 2022): the new examples' loss sees only the
    /// classes present in their batch, so learning new classes does not push down the logits of earlier ones;
    /// replayed examples keep the full cross-entropy.
    /// </summary>
    public bool AsymmetricNewLoss { get; set; }

    /// <summary>Shifts replayed images by up to this many pixels in each direction (square inputs only); 0 disables it.</summary>
    [Range(0, 8)]
    public int ReplayShiftPixels { get; set; }

    /// <summary>
    /// Ridge penalty of the <see cref="ReplayStrategy.Analytic"/> head. It weighs against sums that grow with every example,
    /// so its effect shrinks as the stream grows. On 54,000 Fashion-MNIST images with 1,024 features, any value from 1e-6
    /// to 1 gives the same accuracy, 100 costs 0.02 and 1e5 costs 0.2 (docs/results.md).
    /// </summary>
    [Range(1e-6, 1e6)]
    public double AnalyticRegularization { get; set; } = 1.0;

    /// <summary>Seed of weight initialization and replay sampling.</summary>
    public int Seed { get; set; } = 1;

    public bool UsesDistillation => DistillationWeight > 0;

    public bool UsesReplay => Strategy is not (ReplayStrategy.Naive or ReplayStrategy.Analytic) && ReplayCapacity > 0;

    public bool IsAnalytic => Strategy == ReplayStrategy.Analytic;

    public double EffectiveLogitWeight => Strategy is ReplayStrategy.Der or ReplayStrategy.DerPlusPlus ? ReplayLogitWeight : 0;

    public double EffectiveLabelWeight => Strategy is ReplayStrategy.ExperienceReplay or ReplayStrategy.DerPlusPlus ? ReplayLabelWeight : 0;
}
