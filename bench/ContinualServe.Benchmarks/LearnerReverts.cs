using System.Diagnostics;
using System.Globalization;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Benchmarks;

/// <summary>
/// Resident memory of one thread that trains and reverts, as the learner thread does when the promotion gate rejects
/// every candidate. Each round trains <see cref="StepsPerRound"/> steps and then reverts the trainer to the live
/// version as the learner does: it loads the version's weights, resets the trainer's weights and optimizer, and
/// disposes the loaded module. One arm calls malloc_trim(0) after each revert and one does not. The naive strategy
/// keeps no replay buffer, so that nothing else grows over the rounds.
/// </summary>
internal static class LearnerReverts
{
    private const int Reverts = 100;
    private const int WarmUpReverts = 5;
    private const int BatchSize = 32;

    // The learner's default round of 1,000 examples in batches of 32.
    private const int StepsPerRound = 31;

    private static readonly TimeSpan ArmLimit = TimeSpan.FromMinutes(2);

    /// <param name="trimFirst">Runs the arm with the trim before the arm without it, to show the effect of the order.</param>
    public static void Measure(IdxDataset training, bool trimFirst, Report report)
    {
        List<LabeledExample> examples = Training.Load(training, StepsPerRound * BatchSize);
        foreach (int[] hiddenSizes in new[] { new[] { 256, 256 }, new[] { 1024, 1024 } })
        {
            ModelSpec spec = Contenders.Spec(ModelFactory.MlpArchitecture) with { HiddenSizes = hiddenSizes };
            ModelStore store = Contenders.StoreWithVersions(spec, 1);
            store.TryLoad(1, out ModelVersion? live);
            report.Table($"Learner memory over reverts (MLP 784-{string.Join('-', hiddenSizes)}-10, naive)");
            foreach (bool trim in trimFirst ? new[] { true, false } : new[] { false, true })
            {
                Arm arm = RunArm(spec, live!, examples, trim);
                string name = trim ? "with the trim" : "without the trim";
                report.Row(
                    $"RSS {name}, after {WarmUpReverts} and after {arm.Reverts} reverts",
                    $"{Mebibytes(arm.ResidentBefore)} to {Mebibytes(arm.ResidentAfter)} MiB",
                    string.Create(CultureInfo.InvariantCulture, $"{(double)arm.ResidentAfter / arm.ResidentBefore:F3}x"),
                    "for information");
                report.Row(
                    $"malloc in use {name}, same points",
                    $"{Mebibytes(arm.InUseBefore)} to {Mebibytes(arm.InUseAfter)} MiB",
                    "",
                    "for information");
                if (trim)
                {
                    report.Row(
                        "RSS that each trim returned, and its time, mean after the warm-up",
                        string.Create(CultureInfo.InvariantCulture, $"{arm.ReturnedPerTrim / (1024.0 * 1024.0):F1} MiB in {arm.TrimMilliseconds:F2} ms"),
                        "",
                        "for information");
                }
            }
        }
    }

    private static Arm RunArm(ModelSpec spec, ModelVersion live, List<LabeledExample> examples, bool trim)
    {
        torch.manual_seed(1);
        using nn.Module<Tensor, Tensor> initial = live.LoadModule(torch.CPU);
        using var trainer = new ContinualTrainer(spec, initial, torch.CPU, new TrainerOptions { Strategy = ReplayStrategy.Naive, BatchSize = BatchSize });
        long residentBefore = 0;
        long inUseBefore = 0;
        long returned = 0;
        long trimTicks = 0;
        int reverts = 0;
        var clock = Stopwatch.StartNew();
        while (reverts < WarmUpReverts + Reverts && clock.Elapsed < ArmLimit)
        {
            for (int step = 0; step < StepsPerRound; step++)
            {
                trainer.Step(examples.GetRange(step * BatchSize, BatchSize));
            }

            using (nn.Module<Tensor, Tensor> reloaded = live.LoadModule(torch.CPU))
            {
                trainer.ResetWeights(reloaded);
            }

            if (trim)
            {
                // The warm-up's trims also return what the arm before this one left, so only later trims are counted.
                long untrimmed = GlibcMalloc.ResidentBytes();
                long trimStarted = Stopwatch.GetTimestamp();
                GlibcMalloc.Trim();
                long trimEnded = Stopwatch.GetTimestamp();
                if (reverts >= WarmUpReverts)
                {
                    returned += untrimmed - GlibcMalloc.ResidentBytes();
                    trimTicks += trimEnded - trimStarted;
                }
            }

            reverts++;
            if (reverts == WarmUpReverts)
            {
                residentBefore = ResidentBytes();
                inUseBefore = GlibcMalloc.BytesInUse();
            }
        }

        int counted = Math.Max(1, reverts - WarmUpReverts);
        return new Arm(
            reverts,
            residentBefore,
            ResidentBytes(),
            inUseBefore,
            GlibcMalloc.BytesInUse(),
            returned / counted,
            1000.0 * trimTicks / Stopwatch.Frequency / counted);
    }

    private static long ResidentBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GlibcMalloc.ResidentBytes();
    }

    private static long Mebibytes(long bytes) => bytes / (1024 * 1024);

    private sealed record Arm(
        int Reverts, long ResidentBefore, long ResidentAfter, long InUseBefore, long InUseAfter, long ReturnedPerTrim, double TrimMilliseconds);
}
