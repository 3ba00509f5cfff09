namespace ContinualServe.Learner.Data;

/// <summary>
/// The Split Fashion-MNIST protocol: five tasks of two classes each, (0,1) (2,3) (4,5) (6,7) (8,9),
/// numbered from 1 and seen one after the other, learned class-incrementally with one 10-way head.
/// </summary>
public static class SplitTasks
{
    public const int ClassesPerTask = 2;

    public static int TaskOf(int label) => (label / ClassesPerTask) + 1;

    public static int TaskCount(int classCount) => (classCount + ClassesPerTask - 1) / ClassesPerTask;

    /// <summary>Returns the example indices ordered task by task, keeping the dataset's order inside each task.</summary>
    public static IReadOnlyList<int> OrderByTask(IdxDataset dataset, int maxTasks = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        return Enumerable.Range(0, dataset.Count)
            .Where(index => TaskOf(dataset.Labels[index]) <= maxTasks)
            .OrderBy(index => TaskOf(dataset.Labels[index]))
            .ToList();
    }
}
