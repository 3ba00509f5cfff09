using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Holdout;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Promotion;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Training;

/// <summary>The analytic strategy in a learner: promotion, a rejected round and a restart from the checkpoint.</summary>
public sealed class AnalyticLearnerTests : IDisposable
{
    private const string Topic = "analytic-examples";
    private const int HiddenSize = 64;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-learner-analytic-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 180_000)]
    public async Task HeadFitsExactlyThePromotedExamples()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            int[] taskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();
            int[] taskTwo = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 2).Except(taskOne).ToArray();
            int[] taskTwoFirst = taskTwo[..(taskTwo.Length / 2)];
            int[] taskTwoSecond = taskTwo[(taskTwo.Length / 2)..];

            // The random features come from a version with seeded weights, because the weights the learner would draw
            // itself come from libtorch's process-wide generator, which tests running in parallel draw from too.
            SeededModules.SaveInitialVersion(storeDirectory.Path, Options(broker.BootstrapServers).InitialSpec, seed: 1);

            using (var learner = new ContinualLearner(Options(broker.BootstrapServers), NullLoggerFactory.Instance))
            {
                learner.Start();
                LearnerHarness.Produce(broker.BootstrapServers, Topic, taskOne, "good");
                await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 2);

                // Task 1 twice more with its two labels swapped: the candidate misclassifies task 1 and is rejected,
                // and its examples must leave the head's sums with it. None of them is held out, so the holdout
                // that later candidates are judged on keeps its true labels.
                LearnerHarness.Produce(broker.BootstrapServers, Topic, NotHeldOut(taskOne, "bad"), "bad", label: SwappedLabel);
                LearnerHarness.Produce(broker.BootstrapServers, Topic, NotHeldOut(taskOne, "worse"), "worse", label: SwappedLabel);
                await LearnerHarness.WaitUntilAsync(() => learner.Status.Rejected == 1);

                LearnerHarness.Produce(broker.BootstrapServers, Topic, taskTwoFirst, "next", task: 2);
                await LearnerHarness.WaitUntilAsync(() => learner.Status.LatestVersion == 3);
                learner.Stop(TimeSpan.FromSeconds(10));
            }

            // A restarted learner continues from the checkpoint's sums.
            using (var restarted = new ContinualLearner(Options(broker.BootstrapServers), NullLoggerFactory.Instance))
            {
                restarted.Start();
                LearnerHarness.Produce(broker.BootstrapServers, Topic, taskTwoSecond, "next", task: 2);
                await LearnerHarness.WaitUntilAsync(() => restarted.Status.LatestVersion == 4);
                restarted.Stop(TimeSpan.FromSeconds(10));
            }

            var store = new ModelStore(storeDirectory.Path);
            store.TryLoad(1, out ModelVersion? initial).ShouldBeTrue();
            ModelVersion final = store.TryLoadLatest()!;
            final.Number.ShouldBe(4);
            LabeledExample[] trained = Trained(taskOne, "good", 1).Concat(Trained(taskTwo, "next", 2)).ToArray();
            using nn.Module<Tensor, Tensor> initialModule = initial!.LoadModule(CPU);
            using nn.Module<Tensor, Tensor> finalModule = final.LoadModule(CPU);
            Dictionary<string, Tensor> initialWeights = initialModule.state_dict();
            Dictionary<string, Tensor> finalWeights = finalModule.state_dict();

            finalWeights["layers.hidden0.weight"].eq(initialWeights["layers.hidden0.weight"]).all().item<bool>().ShouldBeTrue("the random features changed");
            (double headError, double scale) = HeadError(finalWeights, trained);
            headError.ShouldBeLessThan(1e-3, "the final head is not the ridge head of exactly the promoted examples");
            scale.ShouldBeGreaterThan(2, "the served head was not calibrated");
        });
    }

    [Fact(Timeout = 180_000)]
    public async Task GradientRejectionKeepsAnalyticSums()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            int[] taskOne = SplitTasks.OrderByTask(TestData.TrainingSet, maxTasks: 1).ToArray();
            SeededModules.SaveInitialVersion(storeDirectory.Path, Options(broker.BootstrapServers).InitialSpec, seed: 1);
            string analyticSumsSha256;
            using (var analytic = new ContinualLearner(Options(broker.BootstrapServers), NullLoggerFactory.Instance))
            {
                analytic.Start();
                LearnerHarness.Produce(broker.BootstrapServers, Topic, taskOne, "good");
                await LearnerHarness.WaitUntilAsync(() => analytic.Status.LatestVersion == 2);
                analytic.Stop(TimeSpan.FromSeconds(10));
                analyticSumsSha256 = analytic.Checkpoint.ShouldNotBeNull().FileSha256[LearnerCheckpoint.OptimizerFileName];
            }

            // DER++ takes over the analytic version 2, and its candidate trained on swapped labels is rejected.
            LearnerOptions gradientOptions = Options(broker.BootstrapServers);
            gradientOptions.Trainer = new TrainerOptions { Strategy = ReplayStrategy.DerPlusPlus, StepsPerBatch = 3 };
            using var gradient = new ContinualLearner(gradientOptions, NullLoggerFactory.Instance);
            gradient.Start();
            int[] swapped = NotHeldOut(taskOne, "bad");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, swapped, "bad", label: SwappedLabel);
            await LearnerHarness.WaitUntilAsync(
                () => gradient.Status.Rejected == 1 && gradient.Status.RoundPosition == taskOne.Length + swapped.Length,
                "the swapped round was not rejected");
            gradient.Stop(TimeSpan.FromSeconds(10));

            // The next rejection refits the live head from the newest checkpoint's sums, so Adam state must not replace them.
            LearnerCheckpoint rejected = gradient.Checkpoint.ShouldNotBeNull();
            rejected.ModelVersion.ShouldBe(2);
            rejected.FileSha256[LearnerCheckpoint.OptimizerFileName]
                .ShouldBe(analyticSumsSha256, "the checkpoint of the rejected round lost the analytic sums");
        });
    }

    // Largest difference between the head, divided by its calibration factor, and the ridge fit from the hidden layer's
    // output to one-hot labels, and that factor: the least-squares scale from the fit to the head.
    private static (double Error, double Scale) HeadError(Dictionary<string, Tensor> weights, LabeledExample[] examples)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        Tensor input = TensorBatches.Features(examples, 0, examples.Length, CPU).mul(1f / 255f);
        Tensor hidden = nn.functional.relu(nn.functional.linear(input, weights["layers.hidden0.weight"], weights["layers.hidden0.bias"]));
        Tensor rows = torch.cat([hidden, torch.ones(examples.Length, 1)], 1).to(ScalarType.Float64);
        Tensor targets = nn.functional.one_hot(TensorBatches.Labels(examples, 0, examples.Length, CPU), 10).to(ScalarType.Float64);

        // Ridge with the trainer's default penalty of 1, as least squares over rows extended by the identity.
        Tensor augmentedRows = torch.cat([rows, torch.eye(HiddenSize + 1, dtype: ScalarType.Float64)], 0);
        Tensor augmentedTargets = torch.cat([targets, torch.zeros(HiddenSize + 1, 10, dtype: ScalarType.Float64)], 0);
        Tensor solution = torch.linalg.lstsq(augmentedRows, augmentedTargets).Solution;

        // Classes without examples keep the unseen-class bias, so only the four seen classes are compared.
        Tensor seen = torch.tensor(new long[] { 0, 1, 2, 3 });
        Tensor head = torch.cat([weights["layers.head.weight"], weights["layers.head.bias"].unsqueeze(1)], 1).to(ScalarType.Float64).index_select(0, seen);
        Tensor fit = solution.t().index_select(0, seen);
        double scale = head.mul(fit).sum().item<double>() / fit.mul(fit).sum().item<double>();
        double error = head.div(scale).sub(fit).abs().max().item<double>();
        return (error, scale);
    }

    private static IEnumerable<LabeledExample> Trained(int[] indices, string prefix, int task) =>
        NotHeldOut(indices, prefix).Select(index => TestData.Example(TestData.TrainingSet, index, prefix) with { Task = task });

    private static int[] NotHeldOut(int[] indices, string prefix)
    {
        var router = new HoldoutRouter(0.1);
        return indices.Where(index => !router.IsHoldout(TestData.ExampleId(prefix, index))).ToArray();
    }

    private LearnerOptions Options(string bootstrapServers)
    {
        LearnerOptions options = LearnerHarness.Options(
            bootstrapServers, Topic, "analytic-test", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Analytic }, HiddenSize);
        options.Promotion = new PromotionOptions { MaxForgetting = 0.3, MaxAverageAccuracyDrop = 0.1 };
        return options;
    }

    // Task 1's labels are 0 and 1, so the exclusive or with 1 swaps them.
    private static int SwappedLabel(int index) => TestData.TrainingSet.Labels[index] ^ 1;
}
