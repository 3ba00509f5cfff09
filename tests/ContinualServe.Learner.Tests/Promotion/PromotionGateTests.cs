using ContinualServe.Learner.Data;
using ContinualServe.Learner.Evaluation;
using ContinualServe.Learner.Promotion;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Promotion;

public sealed class PromotionGateTests : IDisposable
{
    private static readonly ModelSpec SmallSpec = new() { InputShape = [784], HiddenSizes = [64] };

    private readonly TemporaryDirectory storeDirectory = new("continualserve-gate-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact]
    public void WithinLimitsIsPromoted()
    {
        PromotionGate gate = CreateGate(new PromotionOptions { MaxForgetting = 0.2, MaxAverageAccuracyDrop = 0.1, MinGoldenAccuracy = 0.8 });

        PromotionDecision decision = gate.Decide(Summary([0.95], [0.90, 0.92]), Summary([0.95]), goldenAccuracy: 0.85);

        decision.Promoted.ShouldBeTrue();
        decision.Reasons.ShouldBeEmpty();
        decision.MaxForgetting.ShouldBe(0.05, tolerance: 1e-12);
        decision.MaxForgettingTask.ShouldBe(1);
    }

    [Fact]
    public void ForgettingOverLimitIsRejected()
    {
        PromotionGate gate = CreateGate(new PromotionOptions { MaxForgetting = 0.2, MaxAverageAccuracyDrop = 1 });

        PromotionDecision decision = gate.Decide(Summary([0.95], [0.70, 0.99]), Summary([0.95]), goldenAccuracy: null);

        decision.Promoted.ShouldBeFalse();
        decision.Reasons.Count.ShouldBe(1);
        decision.Reasons[0].ShouldContain("task 1");
        decision.MaxForgetting.ShouldBe(0.25, tolerance: 1e-12);
    }

    [Fact]
    public void AccuracyDropOverLimitIsRejected()
    {
        PromotionGate gate = CreateGate(new PromotionOptions { MaxForgetting = 1, MaxAverageAccuracyDrop = 0.1 });

        // On the live version's two tasks ACC falls from 0.93 to 0.775 (0.155 > 0.1).
        PromotionDecision decision = gate.Decide(Summary([0.95], [0.80, 0.75]), Summary([0.95], [0.92, 0.94]), goldenAccuracy: null);

        decision.Promoted.ShouldBeFalse();
        decision.Reasons.Single().ShouldContain("average accuracy");
        decision.LiveAverageAccuracy!.Value.ShouldBe(0.93, tolerance: 1e-12);
    }

    [Fact]
    public void NewTaskDoesNotCountAsDrop()
    {
        PromotionGate gate = CreateGate(new PromotionOptions { MaxForgetting = 1, MaxAverageAccuracyDrop = 0.1 });

        // Task 2 has barely started (0.10), but on task 1, the live version's only task, nothing was lost.
        PromotionDecision decision = gate.Decide(Summary([0.95], [0.93, 0.10]), Summary([0.95]), goldenAccuracy: null);

        decision.Promoted.ShouldBeTrue();
    }

    [Fact]
    public void GoldenAccuracyBelowFloorIsRejected()
    {
        PromotionGate gate = CreateGate(new PromotionOptions { MinGoldenAccuracy = 0.9 });

        PromotionDecision decision = gate.Decide(Summary([0.95]), live: null, goldenAccuracy: 0.89);

        decision.Promoted.ShouldBeFalse();
        decision.Reasons.Single().ShouldContain("golden-set accuracy");
    }

    [Fact]
    public void FirstVersionBelowAccuracyFloorIsRejected()
    {
        PromotionGate gate = CreateGate(new PromotionOptions { MaxForgetting = 1, MinAverageAccuracy = 0.5 });

        PromotionDecision decision = gate.Decide(Summary([0.95], [0.02, 0.04]), live: null, goldenAccuracy: null);

        decision.Promoted.ShouldBeFalse();
        decision.Reasons.Single().ShouldBe("average accuracy 0.0300 on every seen task is below 0.5000");
        decision.ReasonKinds.ShouldBe(["accuracy_floor"]);
    }

    [Fact]
    public void AccuracyFloorIsOffByDefault()
    {
        PromotionGate gate = CreateGate(new PromotionOptions());

        gate.Decide(Summary([0.0]), live: null, goldenAccuracy: null).Promoted.ShouldBeTrue();
    }

    [Fact]
    public void AccuracyFloorSkipsNewerTask()
    {
        PromotionGate gate = CreateGate(new PromotionOptions { MaxForgetting = 1, MaxAverageAccuracyDrop = 1, MinAverageAccuracy = 0.6 });

        // Over both tasks ACC is 0.515, but on task 1, the live version's only task, it is 0.93.
        gate.Decide(Summary([0.95], [0.93, 0.10]), Summary([0.95]), goldenAccuracy: null).Promoted.ShouldBeTrue();

        PromotionDecision decision = gate.Decide(Summary([0.55], [0.50, 0.90]), Summary([0.55]), goldenAccuracy: null);
        decision.Promoted.ShouldBeFalse();
        decision.Reasons.Single().ShouldBe("average accuracy 0.5000 on the live version's tasks is below 0.6000");
    }

    [Fact]
    public void DisabledGatePromotesAll()
    {
        PromotionGate gate = CreateGate(new PromotionOptions { Enabled = false, MaxForgetting = 0 });

        PromotionDecision decision = gate.Decide(Summary([0.95], [0.10, 0.99]), Summary([0.95]), goldenAccuracy: 0);

        decision.Promoted.ShouldBeTrue();
    }

    [Fact]
    public void DamagedCandidateIsRejected()
    {
        LabeledExample[] training = TaskExamples(TestData.TrainingSet, "train");
        LabeledExample[] holdout = TaskExamples(TestData.TestSet, "test");
        WriteGoldenSet(holdout);
        using ContinualTrainer live = TrainOnTaskOne(training, shuffleLabels: false, steps: 60);
        var matrix = new AccuracyMatrix();
        matrix.Record(1, new Dictionary<int, double> { [1] = HoldoutEvaluator.Accuracy(live.Module, torch.CPU, holdout) });
        EvaluationSummary liveSummary = matrix.ToSummary();
        liveSummary.AverageAccuracy.ShouldBeGreaterThan(0.9);

        // The candidate starts from the live weights and learns task 1 again with shuffled labels.
        using ContinualTrainer damaged = Continue(live, training, shuffleLabels: true, steps: 60);
        PromotionDecision rejected = Review(damaged, matrix, holdout, liveSummary);

        // A good candidate from the same live weights keeps learning with true labels.
        using ContinualTrainer good = Continue(live, training, shuffleLabels: false, steps: 20);
        PromotionDecision promoted = Review(good, AccuracyMatrix.FromSummary(liveSummary), holdout, liveSummary);

        rejected.Promoted.ShouldBeFalse();
        rejected.GoldenAccuracy!.Value.ShouldBeLessThan(0.8);
        // Both rows are task 1's, so the current task's forgetting is 0 by definition; the ACC drop catches it.
        rejected.Reasons.ShouldContain(reason => reason.Contains("average accuracy", StringComparison.Ordinal));
        rejected.Reasons.ShouldContain(reason => reason.Contains("golden-set", StringComparison.Ordinal));
        promoted.Promoted.ShouldBeTrue();
        promoted.GoldenAccuracy!.Value.ShouldBeGreaterThan(0.9);
    }

    [Fact]
    public void ReviewCountsDecisions()
    {
        PromotionGate gate = CreateGate(new PromotionOptions { MaxForgetting = 0.2 });
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallSpec);
        double rejectedBefore = ContinualServeMetrics.Promotions.WithLabels("rejected").Value;
        double promotedBefore = ContinualServeMetrics.Promotions.WithLabels("promoted").Value;
        double forgettingBefore = ContinualServeMetrics.PromotionRejections.WithLabels("forgetting").Value;

        PromotionDecision rejected = gate.Review(module, torch.CPU, Summary([0.95], [0.5, 0.9]), Summary([0.95]));
        rejected.Promoted.ShouldBeFalse();
        rejected.ReasonKinds.ShouldBe(["forgetting", "accuracy_drop"]);
        gate.Review(module, torch.CPU, Summary([0.95], [0.9, 0.9]), Summary([0.95])).Promoted.ShouldBeTrue();

        // Other tests in this process may count too, so only a lower bound holds.
        ContinualServeMetrics.Promotions.WithLabels("rejected").Value.ShouldBeGreaterThanOrEqualTo(rejectedBefore + 1);
        ContinualServeMetrics.Promotions.WithLabels("promoted").Value.ShouldBeGreaterThanOrEqualTo(promotedBefore + 1);
        ContinualServeMetrics.PromotionRejections.WithLabels("forgetting").Value.ShouldBeGreaterThanOrEqualTo(forgettingBefore + 1);
    }

    [Fact]
    public void InvalidGoldenSetRejects()
    {
        new GoldenSet { Examples = [new GoldenExample(3, new float[5])] }.Save(storeDirectory.Path);
        PromotionGate gate = CreateGate(new PromotionOptions());
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallSpec);

        PromotionDecision decision = gate.Review(module, torch.CPU, Summary([0.95]), liveEvaluation: null);

        decision.Promoted.ShouldBeFalse();
        decision.Reasons.Single().ShouldContain("golden set unreadable");
    }

    // Error 232 is logged at the first review of each distinct failure and again after a review without one, while every
    // review rejects its candidate.
    [Fact]
    public void GoldenSetErrorLoggedOncePerFailure()
    {
        const int GoldenSetUnreadableEvent = 232;
        var logger = new RecordingLogger();
        var gate = new PromotionGate(new PromotionOptions(), SmallSpec, storeDirectory.Path, logger);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallSpec);
        int LoggedErrors() => logger.Records.Count(record => record.EventId == GoldenSetUnreadableEvent);
        bool Rejected() => !gate.Review(module, torch.CPU, Summary([0.95]), liveEvaluation: null).Promoted;

        new GoldenSet { Examples = [new GoldenExample(3, new float[5])] }.Save(storeDirectory.Path);
        Rejected().ShouldBeTrue();
        Rejected().ShouldBeTrue();
        Rejected().ShouldBeTrue();
        LoggedErrors().ShouldBe(1, "the same failure at three reviews");

        new GoldenSet { Examples = [new GoldenExample(3, new float[7])] }.Save(storeDirectory.Path);
        Rejected().ShouldBeTrue();
        Rejected().ShouldBeTrue();
        LoggedErrors().ShouldBe(2, "a failure with another message");

        File.Delete(Path.Combine(storeDirectory.Path, GoldenSet.FileName));
        Rejected().ShouldBeFalse();
        new GoldenSet { Examples = [new GoldenExample(3, new float[7])] }.Save(storeDirectory.Path);
        Rejected().ShouldBeTrue();
        LoggedErrors().ShouldBe(3, "the failure again after a review without one");
    }

    // .NET raises UnauthorizedAccessException, not an IOException, for a directory at the path and for a file without read
    // permission. Either must reject the candidate as an unreadable golden set, not stop the learner.
    [Fact]
    public void DirectoryAtGoldenSetPathRejects()
    {
        Directory.CreateDirectory(Path.Combine(storeDirectory.Path, GoldenSet.FileName));
        PromotionGate gate = CreateGate(new PromotionOptions());
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallSpec);

        PromotionDecision decision = gate.Review(module, torch.CPU, Summary([0.95]), liveEvaluation: null);

        decision.Promoted.ShouldBeFalse();
        decision.Reasons.Single().ShouldContain("golden set unreadable");
    }

    // Linux stamps files with a clock that advances every few milliseconds, so two uploads made that close together can get
    // the same write time. The test sets it to the same value to make that certain.
    [Fact]
    public void GoldenSetReplacedWithinOneTickIsRead()
    {
        PromotionGate gate = CreateGate(new PromotionOptions());
        torch.manual_seed(3);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallSpec);
        float[] features = new float[SmallSpec.FeatureCount];
        int predicted;
        using (torch.no_grad())
        using (Tensor input = torch.zeros(1, SmallSpec.FeatureCount))
        using (Tensor output = module.call(input))
        {
            predicted = (int)output.argmax(1).item<long>();
        }

        string path = Path.Combine(storeDirectory.Path, GoldenSet.FileName);
        new GoldenSet { Examples = [new GoldenExample(predicted, features)] }.Save(storeDirectory.Path);
        DateTime writtenAt = File.GetLastWriteTimeUtc(path);
        PromotionDecision first = gate.Review(module, torch.CPU, Summary([0.95]), liveEvaluation: null);
        new GoldenSet { Examples = [new GoldenExample((predicted + 1) % SmallSpec.ClassCount, features)] }.Save(storeDirectory.Path);
        File.SetLastWriteTimeUtc(path, writtenAt);
        PromotionDecision second = gate.Review(module, torch.CPU, Summary([0.95]), liveEvaluation: null);

        first.GoldenAccuracy.ShouldBe(1.0);
        second.GoldenAccuracy.ShouldBe(0.0, "the second upload replaced the golden set");
    }

    // The learner reads the golden set once per round, before it decides whether to hold the candidate, and the gate
    // reviews the candidate with that read. A file that turns unusable after the read no longer rejects the candidate
    // that the hold let through.
    [Fact]
    public void ReviewUsesTheGoldenSetReadBefore()
    {
        PromotionGate gate = CreateGate(new PromotionOptions { MinGoldenAccuracy = 0 });
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallSpec);
        new GoldenSet { Examples = [new GoldenExample(3, new float[SmallSpec.FeatureCount])] }.Save(storeDirectory.Path);

        GoldenSetRead golden = gate.ReadGoldenSet();
        File.WriteAllText(Path.Combine(storeDirectory.Path, GoldenSet.FileName), "{ not json");
        PromotionDecision decision = gate.Review(module, torch.CPU, Summary([0.95]), liveEvaluation: null, golden);

        golden.IsUnusable.ShouldBeFalse();
        decision.Promoted.ShouldBeTrue();
        decision.GoldenAccuracy.ShouldNotBeNull();
        gate.ReadGoldenSet().IsUnusable.ShouldBeTrue("the file is not JSON now");
    }

    private PromotionGate CreateGate(PromotionOptions options) =>
        new(options, SmallSpec, storeDirectory.Path, NullLogger.Instance);

    private PromotionDecision Review(ContinualTrainer candidate, AccuracyMatrix matrix, LabeledExample[] holdout, EvaluationSummary live)
    {
        matrix.Record(1, new Dictionary<int, double> { [1] = HoldoutEvaluator.Accuracy(candidate.Module, torch.CPU, holdout) });
        PromotionGate gate = CreateGate(new PromotionOptions { MaxForgetting = 0.2, MaxAverageAccuracyDrop = 0.1, MinGoldenAccuracy = 0.8 });
        return gate.Review(candidate.Module, torch.CPU, matrix.ToSummary(), live);
    }

    private void WriteGoldenSet(LabeledExample[] examples) =>
        new GoldenSet
        {
            Examples = examples.Select(example => new GoldenExample(example.Label, example.Features)).ToArray(),
            UploadedAt = DateTimeOffset.UtcNow,
        }.Save(storeDirectory.Path);

    private static ContinualTrainer TrainOnTaskOne(LabeledExample[] training, bool shuffleLabels, int steps)
    {
        using nn.Module<Tensor, Tensor> initial = SeededModules.Create(SmallSpec, seed: 1);
        return Continue(initial, training, shuffleLabels, steps);
    }

    private static ContinualTrainer Continue(ContinualTrainer from, LabeledExample[] training, bool shuffleLabels, int steps) =>
        Continue(from.Module, training, shuffleLabels, steps);

    private static ContinualTrainer Continue(nn.Module<Tensor, Tensor> from, LabeledExample[] training, bool shuffleLabels, int steps)
    {
        var trainer = new ContinualTrainer(SmallSpec, from, torch.CPU, new TrainerOptions { Strategy = ReplayStrategy.Naive });
        var random = new Random(5);
        for (int step = 0; step < steps; step++)
        {
            LabeledExample[] batch = Enumerable.Range(0, 32)
                .Select(index => training[((step * 32) + index) % training.Length])
                .Select(example => shuffleLabels ? example with { Label = random.Next(10) } : example)
                .ToArray();
            trainer.Step(batch);
        }

        return trainer;
    }

    private static LabeledExample[] TaskExamples(IdxDataset dataset, string prefix) =>
        SplitTasks.OrderByTask(dataset, maxTasks: 1).Select(index => TestData.Example(dataset, index, prefix)).ToArray();

    // A summary whose matrix has the given rows, as AccuracyMatrix computes it.
    private static EvaluationSummary Summary(params double[][] rows)
    {
        var matrix = new AccuracyMatrix();
        for (int row = 0; row < rows.Length; row++)
        {
            matrix.Record(row + 1, rows[row].Select((accuracy, column) => (column + 1, accuracy)).ToDictionary());
        }

        return matrix.ToSummary();
    }
}
