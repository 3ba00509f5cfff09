using ContinualServe.Learner.Data;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Training;

/// <summary>The analytic strategy on degenerate streams: repeated examples, blank images, one class for a long time.</summary>
/// <remarks>
/// Runs alone: the finalizer thread of <see cref="StepsSurviveFinalizerPressure"/> slows every test beside it, and
/// beside the rest of this assembly the test took 3.5 minutes instead of about 12 s.
/// </remarks>
[Collection(nameof(AnalyticNumericsTests))]
[CollectionDefinition(nameof(AnalyticNumericsTests), DisableParallelization = true)]
public sealed class AnalyticNumericsTests
{
    private static readonly ModelSpec Spec = new() { HiddenSizes = [128] };

    private static readonly LabeledExample[] TestExamples = Enumerable.Range(0, TestData.TestSet.Count)
        .Select(index => TestData.Example(TestData.TestSet, index, "test"))
        .ToArray();

    [Fact]
    public void StepsSurviveFinalizerPressure()
    {
        using nn.Module<Tensor, Tensor> initial = ModelFactory.Create(Spec);
        using var trainer = new ContinualTrainer(Spec, initial, CPU, new TrainerOptions { Strategy = ReplayStrategy.Analytic });
        LabeledExample[] batch = Enumerable.Range(0, 32).Select(index => TestData.Example(TestData.TrainingSet, index)).ToArray();

        // Each step creates and drops many small objects. A thread that keeps running the finalizers frees any Scalar
        // that a native call receives without a live managed reference, which fails that call.
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                // Generation 0 is enough: the Scalars of a step die young. A full collection of this assembly's heap
                // took long enough to stretch the test to minutes.
                GC.Collect(0);
                GC.WaitForPendingFinalizers();
            }
        });
        collector.Start();
        try
        {
            // A step takes from 1 to 20 ms under the collector, so the loop also stops after 20 s. Before the fix,
            // runs failed within 2 to 11 s.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (int step = 0; step < 10_000 && clock.Elapsed < TimeSpan.FromSeconds(20); step++)
            {
                double.IsFinite(trainer.Step(batch).Total).ShouldBeTrue($"step {step}");
            }
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
    }

    [Fact]
    public void DegenerateStreamStaysFinite()
    {
        using nn.Module<Tensor, Tensor> initial = ModelFactory.Create(Spec);
        using var trainer = new ContinualTrainer(Spec, initial, CPU, new TrainerOptions { Strategy = ReplayStrategy.Analytic });
        LabeledExample repeated = TestData.Example(TestData.TrainingSet, 0) with { Task = 1 };
        var blank = new LabeledExample("blank", 1, 3, new float[Spec.FeatureCount]);
        LabeledExample[] newClasses = Enumerable.Range(0, 2000)
            .Select(index => TestData.Example(TestData.TrainingSet, index))
            .Where(example => example.Label is 5 or 6)
            .Select(example => example with { Task = 2 })
            .ToArray();

        // One example 30,000 times: the only class seen is its label.
        var losses = new List<double>();
        for (int step = 0; step < 1000; step++)
        {
            losses.Add(trainer.Step(Enumerable.Repeat(repeated, 30).ToArray()).Total);
        }

        Predictions(trainer).Distinct().ShouldBe([repeated.Label]);

        for (int step = 0; step < 100; step++)
        {
            losses.Add(trainer.Step(Enumerable.Repeat(blank, 30).ToArray()).Total);
        }

        for (int start = 0; start < newClasses.Length; start += 32)
        {
            losses.Add(trainer.Step(newClasses[start..Math.Min(start + 32, newClasses.Length)]).Total);
        }

        long[] predicted = Predictions(trainer);
        predicted.ShouldAllBe(label => label == repeated.Label || label == 3 || label == 5 || label == 6);
        predicted.ShouldContain(5);
        predicted.ShouldContain(6);
        losses.ShouldAllBe(loss => double.IsFinite(loss));

        // The head fits one-hot targets, so each example's squared error stays near 1 or below, and never near the
        // square of the unseen-class bias.
        losses.Max().ShouldBeLessThan(4.0);
    }

    private static long[] Predictions(ContinualTrainer trainer)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        Tensor logits = trainer.Module.forward(TensorBatches.Features(TestExamples, 0, TestExamples.Length, CPU));
        logits.isfinite().all().item<bool>().ShouldBeTrue("a logit is not finite");
        return logits.argmax(1).data<long>().ToArray();
    }
}
