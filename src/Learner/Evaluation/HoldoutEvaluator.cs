using ContinualServe.Learner.Data;
using ContinualServe.Learner.Holdout;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Evaluation;

/// <summary>
/// Keeps a sample of each task's holdout examples and measures a module's accuracy on every one of them.
/// A task keeps at most <see cref="CapacityPerTask"/> examples: those whose ids hash lowest (a bottom-k sample).
/// That sample is uniform over the task's holdout examples and does not depend on their order, so a restart that
/// restores the kept examples keeps the same ones as an uninterrupted run. Memory and the cost of a round then stop
/// growing with the stream.
/// </summary>
public sealed class HoldoutEvaluator
{
    private static readonly IComparer<ulong> LargestFirst = Comparer<ulong>.Create((left, right) => right.CompareTo(left));
    private readonly SortedDictionary<int, List<LabeledExample>> holdouts = [];
    private readonly Dictionary<int, PriorityQueue<int, ulong>> slotsByKey = [];

    public HoldoutEvaluator(int capacityPerTask = int.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacityPerTask, 1);
        CapacityPerTask = capacityPerTask;
    }

    public int CapacityPerTask { get; }

    public IReadOnlyCollection<int> Tasks => holdouts.Keys;

    public int Count(int task) => holdouts.TryGetValue(task, out List<LabeledExample>? examples) ? examples.Count : 0;

    /// <summary>The holdout examples kept for <paramref name="task"/>, in no particular order; empty for an unknown task.</summary>
    public IReadOnlyList<LabeledExample> Examples(int task) =>
        holdouts.TryGetValue(task, out List<LabeledExample>? examples) ? examples : [];

    /// <summary>Removes every holdout example, before a checkpoint's holdouts are restored.</summary>
    public void Clear()
    {
        holdouts.Clear();
        slotsByKey.Clear();
    }

    /// <summary>
    /// Offers <paramref name="example"/> to its task's sample. Returns false when the task is full and every kept
    /// example's id hashes lower, so the example is not kept.
    /// </summary>
    public bool Add(LabeledExample example)
    {
        ArgumentNullException.ThrowIfNull(example);
        return Add(example, ExampleIdHash.Of(example.Id));
    }

    /// <summary>Offers <paramref name="example"/> with <paramref name="idHash"/>, the hash of its id computed for routing.</summary>
    public bool Add(LabeledExample example, ExampleIdHash idHash)
    {
        ArgumentNullException.ThrowIfNull(example);
        if (!holdouts.TryGetValue(example.Task, out List<LabeledExample>? examples))
        {
            examples = [];
            holdouts[example.Task] = examples;
            slotsByKey[example.Task] = new PriorityQueue<int, ulong>(LargestFirst);
        }

        PriorityQueue<int, ulong> slots = slotsByKey[example.Task];
        ulong key = idHash.SampleKey;
        if (examples.Count < CapacityPerTask)
        {
            slots.Enqueue(examples.Count, key);
            examples.Add(example);
            return true;
        }

        _ = slots.TryPeek(out int slot, out ulong largest);
        if (key >= largest)
        {
            return false;
        }

        examples[slot] = example;
        _ = slots.DequeueEnqueue(slot, key);
        return true;
    }

    /// <summary>
    /// Returns the accuracy, from 0 to 1, on each task that has holdout examples, with forward passes split as
    /// <paramref name="batching"/> sets.
    /// </summary>
    public IReadOnlyDictionary<int, double> Evaluate(nn.Module<Tensor, Tensor> module, Device device, ForwardBatching? batching = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        var accuracies = new Dictionary<int, double>();
        bool wasTraining = module.training;
        module.eval();
        try
        {
            foreach ((int task, List<LabeledExample> examples) in holdouts)
            {
                accuracies[task] = Accuracy(module, device, examples, batching);
            }
        }
        finally
        {
            module.train(wasTraining);
        }

        return accuracies;
    }

    /// <summary>
    /// Accuracy of <paramref name="module"/> on <paramref name="examples"/>, without gradients, in batches as
    /// <paramref name="batching"/> sets (<see cref="ForwardBatching.Default"/> when null).
    /// </summary>
    public static double Accuracy(nn.Module<Tensor, Tensor> module, Device device, IReadOnlyList<LabeledExample> examples, ForwardBatching? batching = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(examples);
        if (examples.Count == 0)
        {
            return 0;
        }

        using var scope = torch.NewDisposeScope();
        Tensor predicted = TensorBatches.Outputs(module, examples, device, batching).argmax(1);
        Tensor labels = TensorBatches.Labels(examples, 0, examples.Count, device);
        long correct = predicted.eq(labels).sum().item<long>();
        return (double)correct / examples.Count;
    }
}
