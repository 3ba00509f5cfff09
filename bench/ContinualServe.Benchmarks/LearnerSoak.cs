using System.Diagnostics;
using System.Globalization;
using ContinualServe.Learner;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Experiments;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Promotion;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using ContinualServe.Model.Serving;
using Microsoft.Extensions.Logging.Abstractions;

namespace ContinualServe.Benchmarks;

/// <summary>
/// Memory of the whole learner over many rounds. It streams the Fashion-MNIST training set several times through the
/// embedded broker, with new example ids in every pass, in rounds of <see cref="RoundExamples"/> examples. Every round
/// trains, evaluates every task's holdout, runs the promotion gate, and then either copies the weights and writes a
/// version and a checkpoint or reloads the live weights. At the end of each pass the producer waits until the
/// learner has finished its last round and is idle, and this process's memory is read then. Native memory that a
/// round does not free shows up as RSS that grows from pass to pass.
/// </summary>
/// <remarks>
/// The first reading comes after the first pass, not after the first rounds, because the bounded stores fill during
/// that pass by design: each task's holdout sample (<see cref="MaxHoldoutPerTask"/>, below the about 1,200 holdout
/// examples one pass gives each task) and the replay buffer. The broker and the producer run in this process too,
/// and the broker keeps at most about 5 MiB per partition, so their share of RSS stops growing within the first pass.
/// The target applies to RSS after a full collection in the GC's aggressive mode, which returns the GC's free memory to
/// the operating system. In runs on 2 cores without it, the memory that the GC kept committed but free moved RSS at idle
/// by more than 100 MiB between readings. The live GC heap and glibc's bytes in use stayed within 8 MiB meanwhile.
/// </remarks>
internal static class LearnerSoak
{
    private const int RoundExamples = 1000;
    private const int MaxHoldoutPerTask = 1000;
    private const double MaxGrowth = 1.05;

    // Tighter than the default limit of 0.2, so that the revert path runs too. With best, 0.015 and below rejected
    // every round after the first pass, because rounds of one task's examples cost the others more than that.
    private const double MaxAverageAccuracyDrop = 0.02;

    private static readonly TimeSpan TimeLimit = TimeSpan.FromMinutes(12);

    /// <summary>
    /// Streams <paramref name="passes"/> passes over <paramref name="training"/> through a learner with the experiment strategy
    /// <paramref name="strategy"/> (such as <c>best</c> or <c>analytic</c>) and adds a table of its memory after each pass.
    /// </summary>
    public static void Run(IdxDataset training, string strategy, int passes, Report report)
    {
        ExperimentStrategy named = ExperimentStrategy.Named(strategy, new TrainerOptions());
        ModelSpec spec = Contenders.Spec(ModelFactory.MlpArchitecture);
        if (named.HiddenSizes is { } hiddenSizes)
        {
            spec = spec with { HiddenSizes = hiddenSizes };
        }

        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("soak", 1);
        broker.CreateTopic("soak.dlq", 1);
        string storeDirectory = Contenders.NewStoreDirectory();
        var options = new LearnerOptions
        {
            BootstrapServers = broker.BootstrapServers,
            Topic = "soak",
            StoreDirectory = storeDirectory,
            Device = "cpu",
            SessionTimeout = TimeSpan.FromSeconds(3),
            RoundExamples = RoundExamples,
            MaxHoldoutPerTask = MaxHoldoutPerTask,
            InitialSpec = spec,
            Trainer = named.Trainer,
            Promotion = new PromotionOptions { MaxAverageAccuracyDrop = MaxAverageAccuracyDrop },
        };

        var samples = new List<MemorySample>();
        var clock = Stopwatch.StartNew();
        bool timedOut;
        using (var learner = new ContinualLearner(options, NullLoggerFactory.Instance))
        {
            int versions = 0;
            learner.VersionPublished += _ => Interlocked.Increment(ref versions);
            learner.Start();
            using var limit = new CancellationTokenSource(TimeLimit);
            var producer = new ExampleProducer(broker.BootstrapServers, "soak", NullLogger.Instance);
            IReadOnlyList<int> order = SplitTasks.OrderByTask(training);
            MemorySample SampleAfterPass(int pass)
            {
                WaitForRound(learner, (long)pass * order.Count, limit.Token);
                int promoted = Volatile.Read(ref versions);
                MemorySample sample = MemorySample.Read(pass, promoted, learner.Status.Rejected);
                Console.WriteLine(sample);
                samples.Add(sample);
                return sample;
            }

            IEnumerable<LabeledExample> examples = Passes(training, order, passes, SampleAfterPass);
            Task<long> producing = Task.Run(() => producer.ProduceAsync(examples, (long)passes * order.Count, () => learner.Status.Position, null, limit.Token));
            try
            {
                producing.GetAwaiter().GetResult();
                SampleAfterPass(passes);
            }
            catch (OperationCanceledException)
            {
                // The time limit ended the stream early; the table reports the passes that completed.
            }

            timedOut = limit.IsCancellationRequested;
            learner.Stop(TimeSpan.FromSeconds(30));
            if (learner.Failure is { } failure)
            {
                throw new InvalidOperationException("The learner failed during the soak: " + failure.Message, failure);
            }
        }

        Directory.Delete(storeDirectory, recursive: true);
        Write(report, strategy, samples, clock.Elapsed, timedOut);
    }

    // Yields every example of every pass with ids of that pass, so a later pass trains again and routes anew to holdout.
    // Before the first example of each pass after the first, it calls afterPass, which blocks until the learner is idle.
    private static IEnumerable<LabeledExample> Passes(IdxDataset training, IReadOnlyList<int> order, int passes, Func<int, MemorySample> afterPass)
    {
        for (int pass = 1; pass <= passes; pass++)
        {
            if (pass > 1)
            {
                afterPass(pass - 1);
            }

            foreach (int index in order)
            {
                var features = new float[training.FeatureCount];
                ReadOnlySpan<byte> image = training.Image(index);
                for (int pixel = 0; pixel < features.Length; pixel++)
                {
                    features[pixel] = image[pixel];
                }

                int label = training.Labels[index];
                string id = string.Create(CultureInfo.InvariantCulture, $"soak{pass}-{index:D5}");
                yield return new LabeledExample(id, SplitTasks.TaskOf(label), label, features);
            }
        }
    }

    // The learner records the position of every round it finishes, promoted or rejected. Once that position is the
    // end of the pass, the stream's last round is done (an idle round follows the last record after 0.5 s).
    private static void WaitForRound(ContinualLearner learner, long position, CancellationToken cancellation)
    {
        while (learner.Status.RoundPosition < position)
        {
            if (learner.Failure is not null || !learner.Status.IsRunning)
            {
                throw new InvalidOperationException($"The learner stopped at position {learner.Status.Position} before it reached the end of the pass at position {position}.");
            }

            cancellation.ThrowIfCancellationRequested();
            Thread.Sleep(20);
        }
    }

    private static void Write(Report report, string strategy, List<MemorySample> samples, TimeSpan elapsed, bool timedOut)
    {
        report.Table($"Learner memory over rounds (MLP, {strategy}, rounds of {RoundExamples:N0} examples, one pass is the 60,000 training images)");
        if (samples.Count < 2)
        {
            report.Row("passes completed", $"{samples.Count} in {elapsed.TotalSeconds:F0} s (time limit {TimeLimit.TotalMinutes:F0} min)", "", "2 or more");
            return;
        }

        MemorySample first = samples[0];
        MemorySample last = samples[^1];
        foreach (MemorySample sample in samples)
        {
            double growth = (double)sample.ResidentBytes / first.ResidentBytes;
            string ratio = ReferenceEquals(sample, first) ? "" : string.Create(CultureInfo.InvariantCulture, $"{growth:F2}x");
            string target = ReferenceEquals(sample, first) ? "" : "for information";
            if (ReferenceEquals(sample, last))
            {
                ratio = Report.Ratio(growth, MaxGrowth, higherIsBetter: false);
                target = "< 1.05x pass 1 (growth < 5%)";
            }

            report.Row(
                $"after pass {sample.Pass} (round {sample.Rounds}: {sample.Promoted} promoted, {sample.Rejected} rejected)",
                $"RSS {Mebibytes(sample.ResidentBytes)} MiB (before the collection {Mebibytes(sample.RunningResidentBytes)} MiB), "
                + $"GC heap {Mebibytes(sample.HeapBytes)} MiB, glibc malloc in use {Mebibytes(sample.MallocBytes)} MiB",
                ratio,
                target);
        }

        report.Row(
            "GC heap and glibc malloc in use, last reading against the first",
            string.Create(CultureInfo.InvariantCulture, $"GC heap {(double)last.HeapBytes / first.HeapBytes:F2}x, malloc {(double)last.MallocBytes / first.MallocBytes:F2}x"),
            "",
            "for information");
        string stopped = timedOut ? ", stopped at the time limit" : "";
        long rounds = last.Rounds - first.Rounds;
        long promoted = last.Promoted - first.Promoted;
        long rejected = last.Rejected - first.Rejected;
        bool enough = rounds >= 150 && promoted > 0 && rejected > 0;
        report.Row(
            "rounds between the first and last reading",
            $"{rounds} ({promoted} promoted, {rejected} rejected); {elapsed.TotalSeconds:F0} s for the whole run{stopped}",
            enough ? "met" : "missed",
            ">= 150, both kinds");
    }

    private static long Mebibytes(long bytes) => bytes / (1024 * 1024);

    /// <summary>One reading of this process's memory while the learner is idle between passes.</summary>
    private sealed record MemorySample(int Pass, long Promoted, long Rejected, long RunningResidentBytes, long ResidentBytes, long HeapBytes, long MallocBytes)
    {
        public long Rounds => Promoted + Rejected;

        /// <summary>
        /// Reads RSS as the learner left it, then runs an aggressive full collection (finalizers included) and reads RSS,
        /// the GC heap and the bytes glibc's malloc has handed out, which libtorch's CPU tensors take theirs from.
        /// </summary>
        public static MemorySample Read(int pass, long promoted, long rejected)
        {
            long running = GlibcMalloc.ResidentBytes();
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            long heap = GC.GetTotalMemory(forceFullCollection: false);
            return new MemorySample(pass, promoted, rejected, running, GlibcMalloc.ResidentBytes(), heap, GlibcMalloc.BytesInUse());
        }

        public override string ToString() => string.Create(
            CultureInfo.InvariantCulture,
            $"pass {Pass}: round {Rounds} ({Promoted} promoted, {Rejected} rejected), RSS {Mebibytes(ResidentBytes)} MiB after an aggressive collection, {Mebibytes(RunningResidentBytes)} MiB before, GC heap {Mebibytes(HeapBytes)} MiB, glibc malloc in use {Mebibytes(MallocBytes)} MiB");
    }
}
