using ContinualServe.Learner.Data;
using ContinualServe.Learner.Experiments;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Experiments;

public sealed class ExperimentDataTests
{
    [Fact]
    public void ClassIncrementalSplitsByClassPair()
    {
        ExperimentData data = ExperimentData.Create(TestData.TrainingSet, TestData.TestSet, ExperimentProtocol.ClassIncremental, 5, 0);

        data.TaskCount.ShouldBe(5);
        data.TrainingByTask.Sum(task => task.Count).ShouldBe(TestData.TrainingCount);
        data.EvaluationByTask.Sum(task => task.Count).ShouldBe(TestData.TestCount);
        for (int task = 1; task <= 5; task++)
        {
            data.TrainingByTask[task - 1].Select(example => example.Label).Distinct().Order()
                .ShouldBe(new[] { (2 * task) - 2, (2 * task) - 1 });
        }
    }

    [Fact]
    public void ValidationSplitNeverTrains()
    {
        ExperimentData data = ExperimentData.Create(TestData.TrainingSet, TestData.TestSet, ExperimentProtocol.ClassIncremental, 5, 0.1);

        HashSet<string> trained = data.TrainingByTask.SelectMany(task => task).Select(example => example.Id).ToHashSet();
        string[] evaluated = data.EvaluationByTask.SelectMany(task => task).Select(example => example.Id).ToArray();
        evaluated.ShouldAllBe(id => id.StartsWith("train-", StringComparison.Ordinal));
        evaluated.ShouldAllBe(id => !trained.Contains(id));
        (trained.Count + evaluated.Length).ShouldBe(TestData.TrainingCount);
        ((double)evaluated.Length / TestData.TrainingCount).ShouldBeInRange(0.07, 0.13);
    }

    [Fact]
    public void DomainIncrementalPermutesPixels()
    {
        ExperimentData data = ExperimentData.Create(TestData.TrainingSet, TestData.TestSet, ExperimentProtocol.DomainIncremental, 5, 0);

        data.TrainingByTask.ShouldAllBe(task => task.Count == TestData.TrainingCount / 5);
        data.TrainingByTask.ShouldAllBe(task => task.Select(example => example.Label).Distinct().Count() == 10);
        LabeledExample original = data.EvaluationByTask[0][0];
        LabeledExample permuted = data.EvaluationByTask[1][0];
        original.Id.ShouldBe(permuted.Id);
        permuted.Task.ShouldBe(2);
        permuted.Features.ShouldNotBe(original.Features);
        permuted.Features.Order().ShouldBe(original.Features.Order());
        original.Features.ShouldBe(TestData.Example(TestData.TestSet, 0, "test").Features);
    }
}
