using ContinualServe.Learner.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Evaluation;

/// <summary>Keeps each task's holdout examples and measures a module's accuracy on every one of them.</summary>
public sealed class HoldoutEvaluator
{
    private const int EvaluationBatchSize = 1024;
    private readonly SortedDictionary<int, List<LabeledExample>> holdouts = [];

    public IReadOnlyCollection<int> Tasks => holdouts.Keys;

    public int Count(int task) => holdouts.TryGetValue(task, out List<LabeledExample>? examples) ? examples.Count : 0;

    /// <summary>The holdout examples of <paramref name="task"/>, in arrival order; empty for an unknown task.</summary>
    public IReadOnlyList<LabeledExample> Examples(int task) =>
        holdouts.TryGetValue(task, out List<LabeledExample>? examples) ? examples : [];

    /// <summary>Removes every holdout example, before a checkpoint's holdouts are restored.</summary>
    public void Clear() => holdouts.Clear();

    public void Add(LabeledExample example)
    {
        ArgumentNullException.ThrowIfNull(example);
        if (!holdouts.TryGetValue(example.Task, out List<LabeledExample>? examples))
        {
            examples = [];
            holdouts[example.Task] = examples;
        }

        examples.Add(example);
    }

    /// <summary>Returns the accuracy, from 0 to 1, on each task that has holdout examples.</summary>
    public IReadOnlyDictionary<int, double> Evaluate(nn.Module<Tensor, Tensor> module, Device device)
    {
        ArgumentNullException.ThrowIfNull(module);
        var accuracies = new Dictionary<int, double>();
        bool wasTraining = module.training;
        module.eval();
        try
        {
            foreach ((int task, List<LabeledExample> examples) in holdouts)
            {
                accuracies[task] = Accuracy(module, device, examples);
            }
        }
        finally
        {
            module.train(wasTraining);
        }

        return accuracies;
    }

    /// <summary>Accuracy of <paramref name="module"/> on <paramref name="examples"/>, in batches, without gradients.</summary>
    public static double Accuracy(nn.Module<Tensor, Tensor> module, Device device, IReadOnlyList<LabeledExample> examples)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(examples);
        if (examples.Count == 0)
        {
            return 0;
        }

        using var noGrad = torch.no_grad();
        long correct = 0;
        for (int start = 0; start < examples.Count; start += EvaluationBatchSize)
        {
            int size = Math.Min(EvaluationBatchSize, examples.Count - start);
            using var scope = torch.NewDisposeScope();
            Tensor input = TensorBatches.Features(examples, start, size, device);
            Tensor labels = TensorBatches.Labels(examples, start, size, device);
            Tensor predicted = module.forward(input).argmax(1);
            correct += predicted.eq(labels).sum().item<long>();
        }

        return (double)correct / examples.Count;
    }
}
