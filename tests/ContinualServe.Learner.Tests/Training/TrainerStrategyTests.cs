using ContinualServe.Learner.Data;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Training;

public sealed class TrainerStrategyTests
{
    private static readonly ModelSpec SmallSpec = new() { InputShape = [784], HiddenSizes = [32] };

    private static readonly LabeledExample[] Examples = Enumerable.Range(0, TestData.TrainingCount)
        .Select(index => TestData.Example(TestData.TrainingSet, index))
        .ToArray();

    [Fact]
    public void LwfFreezesTeacherOnTaskChange()
    {
        using ContinualTrainer trainer = Create(new TrainerOptions { Strategy = ReplayStrategy.Naive, DistillationWeight = 1 });

        StepLosses first = trainer.Step(Batch(task: 1, offset: 0));
        trainer.HasTeacher.ShouldBeFalse();
        StepLosses second = trainer.Step(Batch(task: 2, offset: 0));
        StepLosses third = trainer.Step(Batch(task: 2, offset: 32));

        trainer.HasTeacher.ShouldBeTrue();
        first.Distillation.ShouldBe(0);

        // The teacher is a copy of the weights at the task change, so the student matches it until it moves.
        second.Distillation.ShouldBe(0, tolerance: 1e-6);
        third.Distillation.ShouldBeGreaterThan(1e-6);
    }

    [Fact]
    public void NoDistillationWithoutWeight()
    {
        using ContinualTrainer trainer = Create(new TrainerOptions { Strategy = ReplayStrategy.ExperienceReplay });

        trainer.Step(Batch(task: 1, offset: 0));
        StepLosses losses = trainer.Step(Batch(task: 2, offset: 0));

        trainer.HasTeacher.ShouldBeFalse();
        losses.Distillation.ShouldBe(0);
        losses.ReplayLabels.ShouldBeGreaterThan(0);
    }

    [Fact]
    public void StepsPerBatchCountsGradientSteps()
    {
        using ContinualTrainer trainer = Create(new TrainerOptions { Strategy = ReplayStrategy.DerPlusPlus, StepsPerBatch = 3 });

        trainer.Step(Batch(task: 1, offset: 0));
        trainer.Step(Batch(task: 1, offset: 32));

        trainer.StepCount.ShouldBe(6);
        trainer.ReplayBuffer.Seen.ShouldBe(64);
    }

    [Fact]
    public void AsymmetricLossLeavesAbsentClassesAlone()
    {
        using ContinualTrainer trainer = Create(new TrainerOptions { Strategy = ReplayStrategy.Naive, AsymmetricNewLoss = true });
        float[] before = HeadBias(trainer);

        trainer.Step(Batch(task: 2, offset: 0));

        float[] after = HeadBias(trainer);
        after[0].ShouldBe(before[0]);
        after[1].ShouldBe(before[1]);
        after[2].ShouldNotBe(before[2]);
        after[3].ShouldNotBe(before[3]);
    }

    [Fact]
    public void SymmetricLossMovesAllClasses()
    {
        using ContinualTrainer trainer = Create(new TrainerOptions { Strategy = ReplayStrategy.Naive });
        float[] before = HeadBias(trainer);

        trainer.Step(Batch(task: 2, offset: 0));

        HeadBias(trainer)[0].ShouldNotBe(before[0]);
    }

    [Fact]
    public void ResetWeightsRestoresLiveWeights()
    {
        torch.manual_seed(3);
        using nn.Module<Tensor, Tensor> live = ModelFactory.Create(SmallSpec);
        using var trainer = new ContinualTrainer(SmallSpec, live, torch.CPU, new TrainerOptions());
        for (int step = 0; step < 5; step++)
        {
            trainer.Step(Batch(task: 1, offset: step * 32));
        }

        HeadBias(trainer).ShouldNotBe(Bias(live));

        // A gradient trainer reads the checkpoint's optimizer file only when it contains analytic sums, and a missing one is fine.
        trainer.ResetWeights(live, Path.Combine(Path.GetTempPath(), "continualserve-missing-" + Guid.NewGuid().ToString("N")));

        HeadBias(trainer).ShouldBe(Bias(live));
        trainer.Step(Batch(task: 1, offset: 0)).Skipped.ShouldBeFalse();
    }

    private static ContinualTrainer Create(TrainerOptions options)
    {
        torch.manual_seed(1);
        using nn.Module<Tensor, Tensor> initial = ModelFactory.Create(SmallSpec);
        return new ContinualTrainer(SmallSpec, initial, torch.CPU, options);
    }

    private static LabeledExample[] Batch(int task, int offset) =>
        Examples.Where(example => example.Task == task).Skip(offset).Take(32).ToArray();

    private static float[] HeadBias(ContinualTrainer trainer) => Bias(trainer.Module);

    private static float[] Bias(nn.Module<Tensor, Tensor> module)
    {
        (string _, TorchSharp.Modules.Parameter bias) = module.named_parameters().Last();
        return bias.detach().data<float>().ToArray();
    }
}
