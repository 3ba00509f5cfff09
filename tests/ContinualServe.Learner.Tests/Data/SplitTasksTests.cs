using ContinualServe.Learner.Data;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Data;

public sealed class SplitTasksTests
{
    [Theory]
    [InlineData(0, 1)]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 2)]
    [InlineData(4, 3)]
    [InlineData(5, 3)]
    [InlineData(6, 4)]
    [InlineData(7, 4)]
    [InlineData(8, 5)]
    [InlineData(9, 5)]
    public void TaskOfPairsLabels(int label, int expectedTask)
    {
        SplitTasks.TaskOf(label).ShouldBe(expectedTask);
    }

    [Fact]
    public void TaskCountRoundsUp()
    {
        SplitTasks.TaskCount(10).ShouldBe(5);
        SplitTasks.TaskCount(9).ShouldBe(5);
        SplitTasks.TaskCount(2).ShouldBe(1);
    }

    [Fact]
    public void OrderByTaskKeepsEveryExample()
    {
        IReadOnlyList<int> order = SplitTasks.OrderByTask(TestData.TrainingSet);

        order.Count.ShouldBe(TestData.TrainingCount);
        order.Distinct().Count().ShouldBe(TestData.TrainingCount);
    }

    [Fact]
    public void OrderByTaskSortsTasks()
    {
        IdxDataset dataset = TestData.TrainingSet;
        IReadOnlyList<int> order = SplitTasks.OrderByTask(dataset);

        int[] tasks = order.Select(index => SplitTasks.TaskOf(dataset.Labels[index])).ToArray();

        tasks.Distinct().ToArray().ShouldBe(new[] { 1, 2, 3, 4, 5 });
        for (int position = 1; position < tasks.Length; position++)
        {
            tasks[position].ShouldBeGreaterThanOrEqualTo(tasks[position - 1], $"task decreases at position {position}");
        }
    }

    [Fact]
    public void OrderByTaskKeepsDatasetOrder()
    {
        IdxDataset dataset = TestData.TrainingSet;
        IReadOnlyList<int> order = SplitTasks.OrderByTask(dataset);

        for (int position = 1; position < order.Count; position++)
        {
            bool sameTask = SplitTasks.TaskOf(dataset.Labels[order[position]]) == SplitTasks.TaskOf(dataset.Labels[order[position - 1]]);
            if (sameTask)
            {
                order[position].ShouldBeGreaterThan(order[position - 1], $"indices out of dataset order at position {position}");
            }
        }
    }

    [Fact]
    public void OrderByTaskStartsAtTaskOne()
    {
        IdxDataset dataset = TestData.TrainingSet;

        // Training labels begin 9, 0, 0, so index 1 is the first example of task 1.
        SplitTasks.OrderByTask(dataset)[0].ShouldBe(1);
    }

    [Fact]
    public void OrderByTaskMaxTasksTwo()
    {
        IdxDataset dataset = TestData.TrainingSet;
        IReadOnlyList<int> order = SplitTasks.OrderByTask(dataset, maxTasks: 2);

        // 1205 of the slice's 3000 training labels are 0..3 (counted with Python from the IDX file).
        order.Count.ShouldBe(1205);
        order.Select(index => (int)dataset.Labels[index]).Distinct().Order().ToArray().ShouldBe(new[] { 0, 1, 2, 3 });
    }
}
