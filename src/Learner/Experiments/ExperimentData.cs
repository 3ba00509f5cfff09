using ContinualServe.Learner.Data;
using ContinualServe.Learner.Holdout;

namespace ContinualServe.Learner.Experiments;

/// <summary>
/// The stream and the evaluation sets of one experiment: training examples ordered task by task, and per task
/// the examples its accuracy is measured on. In validation mode a hash of the example id holds out a fraction
/// of the training data and evaluation uses it; otherwise all training data streams and the test set evaluates.
/// </summary>
public sealed class ExperimentData
{
    private const int PermutationSeed = 7919;

    private ExperimentData(IReadOnlyList<IReadOnlyList<LabeledExample>> trainingByTask, IReadOnlyList<IReadOnlyList<LabeledExample>> evaluationByTask)
    {
        TrainingByTask = trainingByTask;
        EvaluationByTask = evaluationByTask;
    }

    /// <summary>Training examples of task k + 1 at index k, in stream order.</summary>
    public IReadOnlyList<IReadOnlyList<LabeledExample>> TrainingByTask { get; }

    /// <summary>Evaluation examples of task k + 1 at index k.</summary>
    public IReadOnlyList<IReadOnlyList<LabeledExample>> EvaluationByTask { get; }

    public int TaskCount => TrainingByTask.Count;

    public static ExperimentData Create(IdxDataset training, IdxDataset test, ExperimentProtocol protocol, int taskCount, double validationFraction)
    {
        ArgumentNullException.ThrowIfNull(training);
        ArgumentNullException.ThrowIfNull(test);
        bool validation = validationFraction > 0;
        var router = new HoldoutRouter(validation ? validationFraction : 0);
        List<LabeledExample> trainingExamples = [];
        List<LabeledExample> evaluationExamples = [];
        for (int index = 0; index < training.Count; index++)
        {
            LabeledExample example = ToExample(training, index, "train");
            (validation && router.IsHoldout(example.Id) ? evaluationExamples : trainingExamples).Add(example);
        }

        if (!validation)
        {
            evaluationExamples = Enumerable.Range(0, test.Count).Select(index => ToExample(test, index, "test")).ToList();
        }

        return protocol == ExperimentProtocol.ClassIncremental
            ? SplitByClass(trainingExamples, evaluationExamples, taskCount)
            : Permute(trainingExamples, evaluationExamples, taskCount);
    }

    private static ExperimentData SplitByClass(List<LabeledExample> training, List<LabeledExample> evaluation, int taskCount)
    {
        IReadOnlyList<LabeledExample>[] Group(List<LabeledExample> examples) => Enumerable.Range(1, taskCount)
            .Select(task => (IReadOnlyList<LabeledExample>)examples.Where(example => example.Task == task).ToArray())
            .ToArray();

        return new ExperimentData(Group(training), Group(evaluation));
    }

    // Task k streams the k-th fifth of the training data (so the stream is as long as the class-incremental one)
    // through permutation k; task 1 keeps the original pixel order. Every task is evaluated on all evaluation data.
    private static ExperimentData Permute(List<LabeledExample> training, List<LabeledExample> evaluation, int taskCount)
    {
        int featureCount = training[0].Features.Length;
        var random = new Random(PermutationSeed);
        var trainingByTask = new IReadOnlyList<LabeledExample>[taskCount];
        var evaluationByTask = new IReadOnlyList<LabeledExample>[taskCount];
        int chunk = training.Count / taskCount;
        for (int task = 1; task <= taskCount; task++)
        {
            int[] permutation = Enumerable.Range(0, featureCount).ToArray();
            if (task > 1)
            {
                random.Shuffle(permutation);
            }

            trainingByTask[task - 1] = training.Skip((task - 1) * chunk).Take(chunk)
                .Select(example => Permuted(example, permutation, task)).ToArray();
            evaluationByTask[task - 1] = evaluation.Select(example => Permuted(example, permutation, task)).ToArray();
        }

        return new ExperimentData(trainingByTask, evaluationByTask);
    }

    private static LabeledExample Permuted(LabeledExample example, int[] permutation, int task)
    {
        var features = new float[permutation.Length];
        for (int index = 0; index < permutation.Length; index++)
        {
            features[index] = example.Features[permutation[index]];
        }

        return example with { Task = task, Features = features };
    }

    private static LabeledExample ToExample(IdxDataset dataset, int index, string prefix)
    {
        int label = dataset.Labels[index];
        var features = new float[dataset.FeatureCount];
        ReadOnlySpan<byte> image = dataset.Image(index);
        for (int pixel = 0; pixel < features.Length; pixel++)
        {
            features[pixel] = image[pixel];
        }

        string id = prefix + "-" + index.ToString("D5", System.Globalization.CultureInfo.InvariantCulture);
        return new LabeledExample(id, SplitTasks.TaskOf(label), label, features);
    }
}
