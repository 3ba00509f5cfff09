using ContinualServe.Learner.Training;

namespace ContinualServe.Learner.Experiments;

/// <summary>Settings of one experiment: data, protocol, strategies, seeds and the shared trainer settings.</summary>
public sealed class ExperimentOptions
{
    public string DataDirectory { get; set; } = "/usr/share/datasets/fashion-mnist";

    public ExperimentProtocol Protocol { get; set; } = ExperimentProtocol.ClassIncremental;

    public IReadOnlyList<string> Strategies { get; set; } = ExperimentStrategy.KnownNames;

    public IReadOnlyList<int> Seeds { get; set; } = [1, 2, 3];

    /// <summary>Fraction of the training data held out for evaluation (hyperparameter search); 0 evaluates on the test set.</summary>
    public double ValidationFraction { get; set; }

    public int JointEpochs { get; set; } = 5;

    /// <summary>Settings shared by every strategy; each strategy then sets its own loss terms.</summary>
    public TrainerOptions Baseline { get; set; } = new();

    /// <summary>Hidden layer width (random features) of the <c>analytic</c> strategy.</summary>
    public int AnalyticWidth { get; set; } = ExperimentStrategy.DefaultAnalyticWidth;

    /// <summary>libtorch CPU threads; 0 keeps libtorch's default.</summary>
    public int Threads { get; set; } = 1;
}
