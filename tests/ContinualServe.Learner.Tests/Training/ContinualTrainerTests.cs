using ContinualServe.Learner.Data;
using ContinualServe.Learner.Evaluation;
using ContinualServe.Learner.Replay;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Training;

public sealed class ContinualTrainerTests
{
    private const int BatchSize = 32;

    private static readonly ModelSpec SmallSpec = new()
    {
        InputShape = [784],
        HiddenSizes = [32],
    };

    // Task 1 of the slice: every training example labelled 0 (T-shirt/top) or 1 (Trouser), in dataset order.
    private static readonly LabeledExample[] TaskOneExamples = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1)
        .Select(index => TestData.Example(TestData.TrainingSet, index))
        .ToArray();

    [Fact]
    public void TorchSharpNativeLibraryLoads()
    {
        // Throws when libLibTorchSharp.so cannot load, for example when the build's GLIBCXX_3.4.32 patch
        // for Debian 12 (build/TorchSharpNativeFix.targets) was not applied.
        using Tensor ones = torch.ones(2, 3);

        ones.sum().item<float>().ShouldBe(6f);
    }

    [Fact]
    public void TaskOneSliceHasBothLabels()
    {
        TaskOneExamples.Length.ShouldBe(603);
        TaskOneExamples.Select(example => example.Label).Distinct().Order().ToArray().ShouldBe(new[] { 0, 1 });
    }

    [Fact]
    public void TrainerLearnsTaskOne()
    {
        using ContinualTrainer trainer = CreateTrainer(ReplayStrategy.DerPlusPlus, replayCapacity: 500);

        for (int step = 0; step < 200; step++)
        {
            StepLosses losses = trainer.Step(Batch(step));
            losses.Skipped.ShouldBeFalse($"step {step} had a non-finite loss");
        }

        trainer.StepCount.ShouldBe(200);
        trainer.SkippedStepCount.ShouldBe(0);
        double accuracy = HoldoutEvaluator.Accuracy(trainer.Module, torch.CPU, TaskOneExamples[..200]);
        accuracy.ShouldBeGreaterThan(0.9);
    }

    [Fact]
    public void DerPlusPlusFillsReplayBuffer()
    {
        using ContinualTrainer trainer = CreateTrainer(ReplayStrategy.DerPlusPlus, replayCapacity: 100);

        for (int step = 0; step < 3; step++)
        {
            trainer.Step(Batch(step));
        }

        trainer.ReplayBuffer.Count.ShouldBe(3 * BatchSize);
        trainer.ReplayBuffer.Seen.ShouldBe(3 * BatchSize);

        for (int step = 3; step < 10; step++)
        {
            trainer.Step(Batch(step));
        }

        trainer.ReplayBuffer.Count.ShouldBe(100);
        trainer.ReplayBuffer.Seen.ShouldBe(10 * BatchSize);
    }

    [Fact]
    public void ReplayStoresStepLogits()
    {
        using ContinualTrainer trainer = CreateTrainer(ReplayStrategy.DerPlusPlus, replayCapacity: 100);

        trainer.Step(Batch(0));

        trainer.ReplayBuffer.Examples.Count.ShouldBe(BatchSize);
        trainer.ReplayBuffer.Examples[0].Id.ShouldBe(TaskOneExamples[0].Id);
        trainer.ReplayBuffer.Examples[0].Logits.Length.ShouldBe(SmallSpec.ClassCount);
    }

    [Fact]
    public void NaiveKeepsNoReplay()
    {
        using ContinualTrainer trainer = CreateTrainer(ReplayStrategy.Naive, replayCapacity: 500);

        for (int step = 0; step < 5; step++)
        {
            StepLosses losses = trainer.Step(Batch(step));
            losses.ReplayLogits.ShouldBe(0);
            losses.ReplayLabels.ShouldBe(0);
        }

        trainer.ReplayBuffer.Count.ShouldBe(0);
        trainer.ReplayBuffer.Capacity.ShouldBe(0);
    }

    [Fact]
    public void EmptyBatchThrows()
    {
        using ContinualTrainer trainer = CreateTrainer(ReplayStrategy.Naive, replayCapacity: 0);

        Should.Throw<ArgumentException>(() => trainer.Step([]));
    }

    [Fact]
    public void RestoredOptimizerStateContinuesTraining()
    {
        using ContinualTrainer original = CreateTrainer(ReplayStrategy.Naive, replayCapacity: 0);
        for (int step = 0; step < 5; step++)
        {
            original.Step(Batch(step));
        }

        string path = Path.Combine(Path.GetTempPath(), $"adam-{Guid.NewGuid():N}.bin");
        try
        {
            original.SaveOptimizerState(path);
            using ContinualTrainer restored = CreateTrainer(ReplayStrategy.Naive, replayCapacity: 0);
            ModelFactory.CopyWeights(original.Module, restored.Module);
            restored.LoadOptimizerState(path);

            original.Step(Batch(5));
            restored.Step(Batch(5));

            // Identical moments and step count make the next update identical. Fresh moments would not.
            foreach ((Tensor left, Tensor right) in original.Module.parameters().Zip(restored.Module.parameters()))
            {
                left.data<float>().ToArray().ShouldBe(right.data<float>().ToArray());
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void OptimizerStateSaveCopiesNoMoments()
    {
        using ContinualTrainer trainer = CreateTrainer(ReplayStrategy.Naive, replayCapacity: 0);
        trainer.Step(Batch(0));
        string path = Path.Combine(Path.GetTempPath(), $"adam-{Guid.NewGuid():N}.bin");
        try
        {
            // The first save compiles the method and allocates what the runtime needs once.
            trainer.SaveOptimizerState(path);
            long before = GC.GetAllocatedBytesForCurrentThread();
            trainer.SaveOptimizerState(path);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

            // Both moments of every parameter in float32: a managed copy of them would allocate this much again.
            long momentBytes = 2 * sizeof(float) * trainer.Module.parameters().Sum(parameter => parameter.numel());
            allocated.ShouldBeLessThan(momentBytes / 2);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TruncatedOptimizerStateIsRejected()
    {
        using ContinualTrainer trainer = CreateTrainer(ReplayStrategy.Naive, replayCapacity: 0);
        trainer.Step(Batch(0));
        string path = Path.Combine(Path.GetTempPath(), $"adam-{Guid.NewGuid():N}.bin");
        try
        {
            trainer.SaveOptimizerState(path);
            byte[] bytes = File.ReadAllBytes(path);
            File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);

            Should.Throw<EndOfStreamException>(() => trainer.LoadOptimizerState(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void RestoredTrainerDistillsFromSavedTeacher()
    {
        using ContinualTrainer original = CreateTrainer(ReplayStrategy.Naive, replayCapacity: 0, distillationWeight: 1.0);
        original.Step(Batch(0));
        original.Step(Batch(1));
        original.Step(TaskTwo(Batch(2)));
        original.HasTeacher.ShouldBeTrue();
        TrainerProgress progress = original.Progress;
        progress.LastTask.ShouldBe(2);
        progress.TeacherClasses.ShouldBe([0, 1]);

        string path = Path.Combine(Path.GetTempPath(), $"teacher-{Guid.NewGuid():N}.bin");
        try
        {
            original.SaveTeacher(path).ShouldBeTrue();
            using ContinualTrainer restored = CreateTrainer(ReplayStrategy.Naive, replayCapacity: 0, distillationWeight: 1.0);
            ModelFactory.CopyWeights(original.Module, restored.Module);
            restored.Restore(progress, path);

            // Same weights and the same teacher give the same distillation loss on the next batch.
            StepLosses expected = original.Step(TaskTwo(Batch(3)));
            StepLosses actual = restored.Step(TaskTwo(Batch(3)));

            restored.HasTeacher.ShouldBeTrue();
            expected.Distillation.ShouldBeGreaterThan(0);
            actual.Distillation.ShouldBe(expected.Distillation, 1e-6);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TrainerWithoutTeacherSavesNothing()
    {
        using ContinualTrainer trainer = CreateTrainer(ReplayStrategy.Naive, replayCapacity: 0, distillationWeight: 1.0);
        trainer.Step(Batch(0));
        string path = Path.Combine(Path.GetTempPath(), $"teacher-{Guid.NewGuid():N}.bin");

        trainer.SaveTeacher(path).ShouldBeFalse();

        File.Exists(path).ShouldBeFalse();
        trainer.Progress.TeacherClasses.ShouldBeEmpty();
    }

    private static LabeledExample[] TaskTwo(LabeledExample[] batch) => batch.Select(example => example with { Task = 2 }).ToArray();

    [Fact]
    public void FeatureScaleSlowsLayersBelowHead()
    {
        using ContinualTrainer full = CreateTrainer(ReplayStrategy.Naive, replayCapacity: 0);
        using ContinualTrainer slowed = CreateTrainer(ReplayStrategy.Naive, replayCapacity: 0, featureLearningRateScale: 0.25);

        Dictionary<string, Tensor> initial = full.Module.named_parameters().ToDictionary(pair => pair.name, pair => pair.parameter.detach().clone());

        full.Step(Batch(0));
        slowed.Step(Batch(0));

        Dictionary<string, Tensor> slowedParameters = slowed.Module.named_parameters().ToDictionary(pair => pair.name, pair => (Tensor)pair.parameter);
        foreach ((string name, Tensor parameter) in full.Module.named_parameters())
        {
            double fullChange = parameter.detach().sub(initial[name]).abs().sum().item<float>();
            double slowedChange = slowedParameters[name].detach().sub(initial[name]).abs().sum().item<float>();
            fullChange.ShouldBeGreaterThan(0, name);
            double expected = ModelFactory.IsHeadParameter(name) ? 1.0 : 0.25;
            (slowedChange / fullChange).ShouldBe(expected, tolerance: 1e-3, name);
        }
    }

    // An example with features of 1e30 has finite logits near 1e32, but their squared error overflows FP32, so every step
    // that samples it has an infinite replay loss. The trainer removes it from the buffer at the first such step, keeping
    // the other example, and the next step trains.
    [Fact]
    public void ReplayExampleWithNonFiniteLossIsRemoved()
    {
        using ContinualTrainer trainer = CreateTrainer(ReplayStrategy.DerPlusPlus, replayCapacity: 10);
        LabeledExample normal = TaskOneExamples[0];
        float[] huge = Enumerable.Repeat(1e30f, SmallSpec.FeatureCount).ToArray();
        trainer.ReplayBuffer.Offer(new ReplayExample("huge", 1, 0, huge, Enumerable.Repeat(-1e32f, SmallSpec.ClassCount).ToArray()))
            .ShouldBeTrue();
        trainer.ReplayBuffer.Offer(new ReplayExample(normal.Id, normal.Task, normal.Label, normal.Features, new float[SmallSpec.ClassCount]))
            .ShouldBeTrue();

        StepLosses first = trainer.Step(Batch(0));

        first.Skipped.ShouldBeTrue("32 draws from 2 examples all missed the huge one");
        first.DroppedReplayExamples.ShouldBe(1);
        trainer.ReplayBuffer.Examples.Select(example => example.Id).ShouldBe([normal.Id]);
        StepLosses second = trainer.Step(Batch(1));
        second.Skipped.ShouldBeFalse();
        second.DroppedReplayExamples.ShouldBe(0);
    }

    private static ContinualTrainer CreateTrainer(ReplayStrategy strategy, int replayCapacity, double distillationWeight = 0, double featureLearningRateScale = 1)
    {
        var options = new TrainerOptions
        {
            Strategy = strategy,
            BatchSize = BatchSize,
            ReplayCapacity = replayCapacity,
            DistillationWeight = distillationWeight,
            FeatureLearningRateScale = featureLearningRateScale,
        };

        using nn.Module<Tensor, Tensor> initial = SeededModules.Create(SmallSpec, seed: 1);
        return new ContinualTrainer(SmallSpec, initial, torch.CPU, options);
    }

    // Cycles through the task-1 examples in consecutive batches.
    private static LabeledExample[] Batch(int step)
    {
        var batch = new LabeledExample[BatchSize];
        for (int index = 0; index < BatchSize; index++)
        {
            batch[index] = TaskOneExamples[((step * BatchSize) + index) % TaskOneExamples.Length];
        }

        return batch;
    }
}
