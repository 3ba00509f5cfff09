namespace ContinualServe.Learner.Experiments;

/// <summary>How the stream is cut into tasks.</summary>
public enum ExperimentProtocol
{
    /// <summary>Split Fashion-MNIST: five tasks of two classes each, one 10-way head.</summary>
    ClassIncremental,

    /// <summary>Permuted Fashion-MNIST: five tasks over all ten classes, each with its own fixed pixel permutation.</summary>
    DomainIncremental,
}
