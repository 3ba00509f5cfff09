using ContinualServe.Learner.Data;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Training;

/// <summary>
/// The analytic trainer after its sums are reloaded from a file: a rejected candidate's revert and a restart from a
/// checkpoint. Both load a head that was divided by another temperature than the trainer's own.
/// </summary>
public sealed class AnalyticRevertTests : IDisposable
{
    private static readonly ModelSpec Spec = new() { HiddenSizes = [64] };

    private static readonly LabeledExample[][] Tasks = TestData.TrainingExamplesByTask;

    private static readonly LabeledExample[] TestExamples = TestData.TestExamples;

    private readonly TemporaryDirectory directory = new("analytic-revert-");

    private string SumsPath => Path.Combine(directory.Path, "optimizer.bin");

    public void Dispose() => directory.Dispose();

    [Fact]
    public void RestartReportsFittedLoss()
    {
        using nn.Module<Tensor, Tensor> initial = ModelFactory.Create(Spec);
        using ContinualTrainer original = Create(initial);
        Train(original, [.. Tasks[0], .. Tasks[1]]);
        original.CalibrateAnalyticHead(TestExamples).ShouldBeLessThan(0.5, "the test needs a temperature far from 1");
        original.SaveOptimizerState(SumsPath);

        // A restarted learner loads the calibrated weights, but its trainer starts at temperature 1.
        using ContinualTrainer restored = Create(original.Module);
        restored.Restore(original.Progress, teacherPath: null);
        restored.LoadOptimizerState(SumsPath);

        double expected = original.Step(Tasks[2][..32]).Total;
        double actual = restored.Step(Tasks[2][..32]).Total;

        actual.ShouldBe(expected, tolerance: 1e-3);
    }

    [Fact]
    public void RevertReportsFittedLoss()
    {
        using nn.Module<Tensor, Tensor> initial = ModelFactory.Create(Spec);
        using ContinualTrainer reference = Create(initial);
        Train(reference, [.. Tasks[0], .. Tasks[1]]);
        _ = reference.Module;

        // The live version here was never calibrated, and the rejected candidate was.
        using ContinualTrainer trainer = Create(initial);
        Train(trainer, [.. Tasks[0], .. Tasks[1]]);
        trainer.SaveOptimizerState(SumsPath);
        using nn.Module<Tensor, Tensor> live = ModelFactory.Clone(Spec, trainer.Module, CPU);
        Train(trainer, Tasks[2]);
        trainer.CalibrateAnalyticHead(TestExamples).ShouldBeLessThan(0.5, "the test needs a temperature far from 1");
        trainer.ResetWeights(live, SumsPath);

        double expected = reference.Step(Tasks[3][..32]).Total;
        double actual = trainer.Step(Tasks[3][..32]).Total;

        actual.ShouldBe(expected, tolerance: 1e-3);
    }

    [Fact]
    public void RevertForgetsRejectedClasses()
    {
        using nn.Module<Tensor, Tensor> initial = ModelFactory.Create(Spec);
        using ContinualTrainer reference = Create(initial);
        Train(reference, [.. Tasks[0], .. Tasks[1]]);
        double expected = reference.CalibrateAnalyticHead(TestExamples);

        using ContinualTrainer trainer = Create(initial);
        Train(trainer, [.. Tasks[0], .. Tasks[1]]);
        trainer.SaveOptimizerState(SumsPath);
        using nn.Module<Tensor, Tensor> live = ModelFactory.Clone(Spec, trainer.Module, CPU);
        Train(trainer, Tasks[2]);
        trainer.ResetWeights(live, SumsPath);

        // Holdouts of classes 4 and 5 sit at the unseen-class bias after the revert and would flatten the softmax.
        trainer.Progress.SeenClasses.ShouldBe([0, 1, 2, 3]);
        trainer.CalibrateAnalyticHead(TestExamples).ShouldBe(expected, tolerance: expected * 1e-3);
    }

    [Fact]
    public void GradientRevertRefitsAnalyticHead()
    {
        using nn.Module<Tensor, Tensor> initial = ModelFactory.Create(Spec);
        using ContinualTrainer analytic = Create(initial);
        Train(analytic, [.. Tasks[0], .. Tasks[1]]);
        _ = analytic.Module;
        using nn.Module<Tensor, Tensor> fitted = ModelFactory.Clone(Spec, analytic.Module, CPU);
        analytic.CalibrateAnalyticHead(TestExamples).ShouldBeLessThan(0.5, "the test needs a temperature far from 1");
        analytic.SaveOptimizerState(SumsPath);

        // The learner switched to DER++ after this calibrated version, and DER++'s first candidate was rejected.
        using var gradient = new ContinualTrainer(Spec, analytic.Module, CPU, new TrainerOptions { Strategy = ReplayStrategy.DerPlusPlus });
        gradient.LoadOptimizerState(SumsPath).ShouldBeFalse();
        gradient.Step(Tasks[2][..32]).Skipped.ShouldBeFalse();
        gradient.ResetWeights(analytic.Module, SumsPath);

        // Compared as one number, because a failure would otherwise print every logit of the test set twice.
        float[] expected = Logits(fitted);
        float[] actual = Logits(gradient.Module);
        float largestDifference = expected.Zip(actual, (left, right) => Math.Abs(left - right)).Max();
        largestDifference.ShouldBeLessThan(1e-3f, "the head is not the unscaled fit of the sums");
    }

    [Fact]
    public void TruncatedSumsLeaveTrainerUnchanged()
    {
        using nn.Module<Tensor, Tensor> initial = ModelFactory.Create(Spec);
        using ContinualTrainer trainer = Create(initial);
        Train(trainer, Tasks[0]);
        trainer.SaveOptimizerState(SumsPath);
        using nn.Module<Tensor, Tensor> live = ModelFactory.Clone(Spec, trainer.Module, CPU);
        Train(trainer, Tasks[1]);
        float[] candidate = Logits(trainer.Module);
        using (var stream = new FileStream(SumsPath, FileMode.Open))
        {
            stream.SetLength(stream.Length / 2);
        }

        InvalidDataException exception = Should.Throw<InvalidDataException>(() => trainer.ResetWeights(live, SumsPath));

        exception.Message.ShouldContain(SumsPath);
        exception.Message.ShouldContain("truncated");
        Logits(trainer.Module).ShouldBe(candidate, tolerance: 1e-5f);
    }

    private static ContinualTrainer Create(nn.Module<Tensor, Tensor> initial) =>
        new(Spec, initial, CPU, new TrainerOptions { Strategy = ReplayStrategy.Analytic });

    private static void Train(ContinualTrainer trainer, LabeledExample[] examples)
    {
        for (int start = 0; start < examples.Length; start += 32)
        {
            StepLosses losses = trainer.Step(examples[start..Math.Min(start + 32, examples.Length)]);
            losses.Skipped.ShouldBeFalse();
        }
    }

    private static float[] Logits(nn.Module<Tensor, Tensor> module)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        return module.forward(TensorBatches.Features(TestExamples, 0, TestExamples.Length, CPU)).data<float>().ToArray();
    }
}
