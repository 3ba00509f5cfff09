using ContinualServe.Learner.Replay;
using ContinualServe.Learner.Training;

namespace ContinualServe.Learner.Experiments;

/// <summary>
/// A named training configuration of the experiment runner. Continual strategies stream every task once through
/// <see cref="ContinualTrainer"/>; the joint bound trains the same trainer without replay on all tasks shuffled
/// together for <see cref="JointEpochs"/> epochs. <see cref="HiddenSizes"/>, when set, replaces the model's hidden layer widths.
/// </summary>
public sealed record ExperimentStrategy(string Name, TrainerOptions Trainer, int JointEpochs = 0, IReadOnlyList<int>? HiddenSizes = null)
{
    public bool IsJoint => JointEpochs > 0;

    /// <summary>Names accepted by <see cref="Named"/>, in the order the results table lists them.</summary>
    public static IReadOnlyList<string> KnownNames { get; } =
        ["naive", "er", "der", "derpp", "lwf", "er-lwf", "er-ace", "best", "analytic", "joint"];

    /// <summary>
    /// Builds the strategy called <paramref name="name"/> over <paramref name="baseline"/>'s shared settings (batch
    /// sizes, learning rate, buffer capacity, weights of each loss term, seed). <c>analytic</c> runs on one hidden
    /// layer of <paramref name="analyticWidth"/> random features.
    /// </summary>
    public static ExperimentStrategy Named(string name, TrainerOptions baseline, int jointEpochs = 5, int analyticWidth = DefaultAnalyticWidth)
    {
        ArgumentNullException.ThrowIfNull(baseline);
        TrainerOptions With(ReplayStrategy strategy, bool distillation = false) => Copy(baseline, strategy, distillation);
        return name switch
        {
            "naive" => new(name, With(ReplayStrategy.Naive)),
            "er" => new(name, With(ReplayStrategy.ExperienceReplay)),
            "der" => new(name, With(ReplayStrategy.Der)),
            "derpp" => new(name, With(ReplayStrategy.DerPlusPlus)),
            "lwf" => new(name, With(ReplayStrategy.Naive, distillation: true)),
            "er-lwf" => new(name, With(ReplayStrategy.ExperienceReplay, distillation: true)),
            "er-ace" => new(name, AsymmetricReplay(With(ReplayStrategy.ExperienceReplay))),
            "best" => new(name, Best(With(ReplayStrategy.DerPlusPlus))),
            "analytic" => new(name, With(ReplayStrategy.Analytic), HiddenSizes: [analyticWidth]),
            "joint" => new(name, With(ReplayStrategy.Naive), jointEpochs),
            _ => throw new ArgumentException(
                $"Unknown strategy '{name}'; expected one of {string.Join(", ", KnownNames)}.", nameof(name)),
        };
    }

    private static TrainerOptions AsymmetricReplay(TrainerOptions options)
    {
        options.AsymmetricNewLoss = true;
        return options;
    }

    /// <summary>Random features of <c>analytic</c>: its sums take about 8.5 MB, and accuracy grows with the width (docs/results.md).</summary>
    public const int DefaultAnalyticWidth = 1024;

    /// <summary>The feature layers' learning-rate scale of <c>best</c>, chosen on the validation split.</summary>
    public const double BestFeatureLearningRateScale = 0.2;

    // The combination that scored best on the validation split (docs/results.md lists what each part adds).
    private static TrainerOptions Best(TrainerOptions options)
    {
        options.AsymmetricNewLoss = true;
        options.BufferKind = ReplayBufferKind.ClassBalanced;
        options.StepsPerBatch = Math.Max(options.StepsPerBatch, 3);
        options.FeatureLearningRateScale = Math.Min(options.FeatureLearningRateScale, BestFeatureLearningRateScale);
        return options;
    }

    private static TrainerOptions Copy(TrainerOptions source, ReplayStrategy strategy, bool distillation) => new()
    {
        Strategy = strategy,
        BatchSize = source.BatchSize,
        ReplayBatchSize = source.ReplayBatchSize,
        ReplayCapacity = source.ReplayCapacity,
        LearningRate = source.LearningRate,
        FeatureLearningRateScale = source.FeatureLearningRateScale,
        ReplayLogitWeight = source.ReplayLogitWeight,
        ReplayLabelWeight = source.ReplayLabelWeight,
        GradientClipNorm = source.GradientClipNorm,
        BufferKind = source.BufferKind,
        DistillationWeight = distillation ? Math.Max(source.DistillationWeight, 1.0) : 0,
        DistillationTemperature = source.DistillationTemperature,
        StepsPerBatch = source.StepsPerBatch,
        AsymmetricNewLoss = source.AsymmetricNewLoss,
        ReplayShiftPixels = source.ReplayShiftPixels,
        AnalyticRegularization = source.AnalyticRegularization,
        Seed = source.Seed,
    };
}
