using ContinualServe.Learner.Data;
using ContinualServe.Learner.Evaluation;
using ContinualServe.Learner.Holdout;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Evaluation;

public sealed class HoldoutEvaluatorTests
{
    [Fact]
    public void CapacityBoundsEachTask()
    {
        var evaluator = new HoldoutEvaluator(capacityPerTask: 100);

        foreach (LabeledExample example in Examples(task: 1, count: 500).Concat(Examples(task: 2, count: 50)))
        {
            _ = evaluator.Add(example);
        }

        evaluator.Count(1).ShouldBe(100);
        evaluator.Count(2).ShouldBe(50);
        evaluator.Examples(1).Select(example => example.Id).Distinct().Count().ShouldBe(100);
    }

    [Fact]
    public void SampleIgnoresArrivalOrder()
    {
        LabeledExample[] examples = Examples(task: 1, count: 500);

        string[] forward = KeptIds(examples);
        string[] backward = KeptIds(examples.Reverse());
        LabeledExample[] mixed = [.. examples];
        new Random(7).Shuffle(mixed);
        string[] shuffled = KeptIds(mixed);

        backward.ShouldBe(forward);
        shuffled.ShouldBe(forward);
    }

    [Fact]
    public void RestoredSampleMatchesUninterrupted()
    {
        LabeledExample[] examples = Examples(task: 1, count: 500);
        var before = new HoldoutEvaluator(capacityPerTask: 100);
        foreach (LabeledExample example in examples[..250])
        {
            _ = before.Add(example);
        }

        // A restart restores only the kept examples, then the stream continues.
        var restored = new HoldoutEvaluator(capacityPerTask: 100);
        foreach (LabeledExample example in before.Examples(1).Concat(examples[250..]))
        {
            _ = restored.Add(example);
        }

        restored.Examples(1).Select(example => example.Id).Order().ShouldBe(KeptIds(examples));
    }

    [Fact]
    public void SampleKeepsLabelProportions()
    {
        var evaluator = new HoldoutEvaluator(capacityPerTask: 1_000);

        foreach (LabeledExample example in Examples(task: 1, count: 10_000))
        {
            _ = evaluator.Add(example);
        }

        // Labels alternate 0 and 1, so a uniform sample of 1,000 contains about 500 of each (one standard deviation is 16).
        int zeros = evaluator.Examples(1).Count(example => example.Label == 0);
        zeros.ShouldBeInRange(440, 560);
    }

    [Fact]
    public void SampleMatchesPinnedIds()
    {
        // The five ids with the lowest bytes 8 to 15 of SHA-256 (little-endian), computed independently.
        // Learner checkpoints store the sample chosen by this key, so it must not change.
        var evaluator = new HoldoutEvaluator(capacityPerTask: 5);

        foreach (LabeledExample example in Examples(task: 1, count: 500))
        {
            _ = evaluator.Add(example);
        }

        evaluator.Examples(1).Select(example => example.Id).Order().ShouldBe(
            ["task1-example177", "task1-example204", "task1-example21", "task1-example218", "task1-example399"]);
    }

    [Fact]
    public void PrecomputedHashKeepsSameSample()
    {
        LabeledExample[] examples = Examples(task: 1, count: 500);
        var evaluator = new HoldoutEvaluator(capacityPerTask: 100);

        foreach (LabeledExample example in examples)
        {
            _ = evaluator.Add(example, ExampleIdHash.Of(example.Id));
        }

        evaluator.Examples(1).Select(example => example.Id).Order().ShouldBe(KeptIds(examples));
    }

    [Fact]
    public void UnboundedEvaluatorKeepsEverything()
    {
        var evaluator = new HoldoutEvaluator();

        bool[] added = Examples(task: 3, count: 300).Select(evaluator.Add).ToArray();

        added.ShouldAllBe(wasAdded => wasAdded);
        evaluator.Count(3).ShouldBe(300);
    }

    private static string[] KeptIds(IEnumerable<LabeledExample> examples)
    {
        var evaluator = new HoldoutEvaluator(capacityPerTask: 100);
        foreach (LabeledExample example in examples)
        {
            _ = evaluator.Add(example);
        }

        return evaluator.Examples(1).Select(example => example.Id).Order().ToArray();
    }

    private static LabeledExample[] Examples(int task, int count) =>
        Enumerable.Range(0, count).Select(index => new LabeledExample($"task{task}-example{index}", task, index % 2, [index])).ToArray();
}
