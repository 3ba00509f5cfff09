using ContinualServe.Learner.Data;

namespace ContinualServe.Learner.Tests;

/// <summary>Loads the committed Fashion-MNIST slice that the build copies to the test output.</summary>
internal static class TestData
{
    public const int TrainingCount = 3000;

    public const int TestCount = 500;

    public static readonly string SliceDirectory = Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist");

    private static readonly Lazy<IdxDataset> Training = new(() => IdxDataset.LoadFashionMnist(SliceDirectory, training: true));

    private static readonly Lazy<IdxDataset> Test = new(() => IdxDataset.LoadFashionMnist(SliceDirectory, training: false));

    private static readonly Lazy<LabeledExample[][]> TrainingByTask = new(() => Enumerable.Range(1, 5)
        .Select(task => SplitTasks.OrderByTask(TrainingSet, maxTasks: 5)
            .Select(index => Example(TrainingSet, index))
            .Where(example => example.Task == task)
            .ToArray())
        .ToArray());

    private static readonly Lazy<LabeledExample[]> TestList = new(() => Enumerable.Range(0, TestSet.Count)
        .Select(index => Example(TestSet, index, "test"))
        .ToArray());

    public static IdxDataset TrainingSet => Training.Value;

    public static IdxDataset TestSet => Test.Value;

    /// <summary>The training slice's examples by task (labels 2t-2 and 2t-1 in task t), in dataset order.</summary>
    public static LabeledExample[][] TrainingExamplesByTask => TrainingByTask.Value;

    /// <summary>Every example of the test slice, with ids test-index.</summary>
    public static LabeledExample[] TestExamples => TestList.Value;

    /// <summary>Returns the example at <paramref name="index"/> with the id format that ExampleProducer uses.</summary>
    public static LabeledExample Example(IdxDataset dataset, int index, string prefix = "train")
    {
        int label = dataset.Labels[index];
        float[] features = new float[dataset.FeatureCount];
        ReadOnlySpan<byte> image = dataset.Image(index);
        for (int pixel = 0; pixel < features.Length; pixel++)
        {
            features[pixel] = image[pixel];
        }

        return new LabeledExample(ExampleId(prefix, index), SplitTasks.TaskOf(label), label, features);
    }

    public static string ExampleId(string prefix, int index) =>
        prefix + "-" + index.ToString("D5", System.Globalization.CultureInfo.InvariantCulture);
}
