using System.Diagnostics;
using System.Globalization;
using ContinualServe.Learner;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn.functional;

namespace ContinualServe.Benchmarks;

/// <summary>
/// Learner throughput against a bare TorchSharp training loop on the same data, model and batch size. Every
/// contender runs on the thread settings Program.cs sets (one libtorch intra-op thread) and runs once unmeasured
/// first, so that JIT compilation and libtorch's first calls are not counted for any of them. The bare loop,
/// the naive trainer and the whole learner then run in turn <see cref="Rounds"/> times, and the report gives
/// each one's median, so that load from other processes on a shared machine falls on all of them alike.
/// </summary>
internal static class Training
{
    private const int Examples = 20_000;
    private const int WarmUpExamples = 3_200;
    private const int BatchSize = 32;
    private const int Rounds = 3;

    // The learner's default round (evaluate, gate, publish, checkpoint) and a larger one that shows its share.
    private const int DefaultRoundExamples = 1000;
    private const int LargeRoundExamples = 5000;

    // The embedded broker keeps about 5 MiB per partition and drops older records silently. The 24,000 JSON records
    // of two tasks take about 54 MB, so 24 partitions keep about 2.3 MB each when all are produced before the learner
    // starts. Records are spread by key, so near the task boundary the learner reads some of task 1 after task 2 began.
    private const int TopicPartitions = 24;

    public static void Compare(IdxDataset training, Report report)
    {
        ModelSpec spec = Contenders.Spec(ModelFactory.MlpArchitecture);
        List<LabeledExample> examples = Load(training, Examples);
        List<LabeledExample> warmUp = examples.GetRange(0, WarmUpExamples);
        BareLoop(spec, warmUp);
        TrainerLoop(spec, warmUp, ReplayStrategy.Naive);
        TrainerLoop(spec, warmUp, ReplayStrategy.DerPlusPlus);
        EndToEnd(training);
        EndToEnd(training, format: RecordFormat.Binary);

        var bareRuns = new List<(double Rate, TimeSpan Cpu)>();
        var naiveRates = new List<double>();
        var endToEndRuns = new List<(double Rate, CpuUsage Cpu, long Records)>();
        var binaryRates = new List<double>();
        for (int round = 0; round < Rounds; round++)
        {
            bareRuns.Add(BareLoop(spec, examples));
            naiveRates.Add(TrainerLoop(spec, examples, ReplayStrategy.Naive));
            endToEndRuns.Add(EndToEnd(training));
            binaryRates.Add(EndToEnd(training, format: RecordFormat.Binary).Rate);
        }

        List<double> bareRates = bareRuns.ConvertAll(run => run.Rate);
        double bare = Median(bareRates);
        double naiveTrainer = Median(naiveRates);
        double derTrainer = TrainerLoop(spec, examples, ReplayStrategy.DerPlusPlus);
        (double endToEnd, CpuUsage cpu, _) = endToEndRuns.OrderBy(run => run.Rate).ElementAt(Rounds / 2);
        double bareCpu = Median(bareRuns.ConvertAll(run => run.Cpu.TotalMicroseconds / examples.Count));
        double learnerCpu = Median(endToEndRuns.ConvertAll(run => run.Cpu.Learner.TotalMicroseconds / run.Records));
        double binary = Median(binaryRates);
        (double jsonDecode, double binaryDecode) = DecodeTimes(examples);
        (double largerRounds, _, _) = EndToEnd(training, LargeRoundExamples);
        (double producerInProcess, CpuUsage producerInProcessCpu, _) = EndToEnd(training, produceDuringRun: true);

        report.Table($"Learner throughput (MLP, batch {BatchSize}, Adam; median of {Rounds} runs in turn)");
        report.Row("bare TorchSharp loop (cross-entropy only)", $"{Report.Number(bare)} examples/s ({Rates(bareRates)})", "", "");
        report.Row("ContinualTrainer, naive", $"{Report.Number(naiveTrainer)} examples/s ({Rates(naiveRates)})", Report.Ratio(naiveTrainer / bare, 0.8), ">= 0.8x bare");
        report.Row("ContinualTrainer, DER++ (three forward passes per step; one run)", $"{Report.Number(derTrainer)} examples/s", string.Create(CultureInfo.InvariantCulture, $"{derTrainer / bare:F2}x"), "for information");
        report.Row("whole learner, naive: Kafka, JSON decoding, holdout, training, rounds", $"{Report.Number(endToEnd)} examples/s ({Rates(endToEndRuns.Select(run => run.Rate))})", Report.Ratio(endToEnd / bare, 0.8), ">= 0.8x bare");
        report.Row("CPU during the median whole-learner run (records produced before the learner started)", cpu.ToString(), "", "for information");
        report.Row(
            "CPU time per record: bare loop's thread against the learner thread (JSON, medians of the same runs)",
            string.Create(CultureInfo.InvariantCulture, $"bare {bareCpu:F1} us, learner thread {learnerCpu:F1} us"),
            string.Create(CultureInfo.InvariantCulture, $"{bareCpu / learnerCpu:F2}x"),
            "for information");
        report.Row(
            "whole learner, naive, binary records instead of JSON",
            $"{Report.Number(binary)} examples/s ({Rates(binaryRates)})",
            string.Create(CultureInfo.InvariantCulture, $"{binary / bare:F2}x bare, {binary / endToEnd:F2}x JSON"),
            "for information");
        report.Row(
            "decoding one record, median of 5 passes over the examples",
            string.Create(CultureInfo.InvariantCulture, $"JSON {jsonDecode:F2} us, binary {binaryDecode:F2} us"),
            string.Create(CultureInfo.InvariantCulture, $"{jsonDecode / binaryDecode:F1}x faster"),
            "for information");
        report.Row(
            $"whole learner, rounds of {LargeRoundExamples:N0} examples instead of {DefaultRoundExamples:N0} (one run)",
            $"{Report.Number(largerRounds)} examples/s",
            string.Create(CultureInfo.InvariantCulture, $"{largerRounds / bare:F2}x"),
            "for information");
        report.Row(
            "whole learner, naive, producer in this process during the run (as the earlier records measured it; one run)",
            $"{Report.Number(producerInProcess)} examples/s; {producerInProcessCpu}",
            string.Create(CultureInfo.InvariantCulture, $"{producerInProcess / bare:F2}x"),
            "for information");
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    private static string Rates(IEnumerable<double> rates) => "runs: " + string.Join(", ", rates.Select(Report.Number));

    // Returns the examples per second and the CPU time of this thread during the loop.
    private static (double Rate, TimeSpan Cpu) BareLoop(ModelSpec spec, List<LabeledExample> examples)
    {
        torch.manual_seed(1);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(spec);
        using optim.Optimizer optimizer = optim.Adam(module.parameters(), 1e-3);
        module.train();
        TimeSpan cpuAtStart = ThreadTimes.CurrentThread();
        var clock = Stopwatch.StartNew();
        for (int start = 0; start + BatchSize <= examples.Count; start += BatchSize)
        {
            using var scope = torch.NewDisposeScope();
            Tensor input = TensorBatches.Features(examples, start, BatchSize, torch.CPU);
            Tensor labels = TensorBatches.Labels(examples, start, BatchSize, torch.CPU);
            Tensor loss = cross_entropy(module.forward(input), labels);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
        }

        return (examples.Count / clock.Elapsed.TotalSeconds, ThreadTimes.CurrentThread() - cpuAtStart);
    }

    private static double TrainerLoop(ModelSpec spec, List<LabeledExample> examples, ReplayStrategy strategy)
    {
        torch.manual_seed(1);
        using nn.Module<Tensor, Tensor> initial = ModelFactory.Create(spec);
        using var trainer = new ContinualTrainer(spec, initial, torch.CPU, new TrainerOptions { Strategy = strategy, BatchSize = BatchSize });
        var clock = Stopwatch.StartNew();
        for (int start = 0; start + BatchSize <= examples.Count; start += BatchSize)
        {
            trainer.Step(examples.GetRange(start, BatchSize));
        }

        return examples.Count / clock.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// Returns the microseconds per record of <see cref="ExampleRecordCodec.TryDecode"/> on the JSON and the binary
    /// records of <paramref name="examples"/>, each the median of five passes after one unmeasured pass.
    /// </summary>
    private static (double Json, double Binary) DecodeTimes(List<LabeledExample> examples)
    {
        var codec = new ExampleRecordCodec(examples[0].Features.Length, 10);
        byte[][] json = examples.Select(example => ExampleProducer.Encode(RecordFormat.Json, example)).ToArray();
        byte[][] binary = examples.Select(example => ExampleProducer.Encode(RecordFormat.Binary, example)).ToArray();
        double PerRecord(byte[][] records)
        {
            var passes = new List<double>();
            for (int pass = 0; pass <= 5; pass++)
            {
                var clock = Stopwatch.StartNew();
                foreach (byte[] record in records)
                {
                    if (!codec.TryDecode(record, out _, out string error))
                    {
                        throw new InvalidOperationException("A benchmark record did not decode: " + error);
                    }
                }

                if (pass > 0)
                {
                    passes.Add(clock.Elapsed.TotalMicroseconds / records.Length);
                }
            }

            return Median(passes);
        }

        return (PerRecord(json), PerRecord(binary));
    }

    /// <summary>
    /// Runs the learner on the embedded broker and returns its records per second, the process's CPU time and the
    /// number of records in the measured window. By default every record is produced before the learner starts, as
    /// a producer on another machine would have done, so the producer does not share the cores while the learner
    /// runs. With <paramref name="produceDuringRun"/> the producer runs on thread-pool threads of this process,
    /// paced to the learner, during the whole measurement, as the earlier benchmark records measured it. Decoding runs
    /// inside the learner in both cases. The clock runs from the learner's first handled record to its last.
    /// </summary>
    private static (double Rate, CpuUsage Cpu, long Records) EndToEnd(
        IdxDataset training, int roundExamples = DefaultRoundExamples, RecordFormat format = RecordFormat.Json, bool produceDuringRun = false)
    {
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("bench", TopicPartitions);
        broker.CreateTopic("bench.dlq", 1);
        var options = new LearnerOptions
        {
            BootstrapServers = broker.BootstrapServers,
            Topic = "bench",
            StoreDirectory = Contenders.NewStoreDirectory(),
            Device = "cpu",
            SessionTimeout = TimeSpan.FromSeconds(3),
            RoundExamples = roundExamples,
            Trainer = new TrainerOptions { Strategy = ReplayStrategy.Naive, BatchSize = BatchSize },
        };
        var producer = new ExampleProducer(broker.BootstrapServers, "bench", NullLogger.Instance) { MaxTasks = 2, Format = format };
        long producedBefore = produceDuringRun ? 0 : producer.ProduceAsync(training, null, null, CancellationToken.None).GetAwaiter().GetResult();
        using var learner = new ContinualLearner(options, NullLoggerFactory.Instance);
        learner.Start();
        Task<long> producing = produceDuringRun
            ? Task.Run(() => producer.ProduceAsync(training, () => learner.Status.Position, null, CancellationToken.None))
            : Task.FromResult(producedBefore);

        // The clock starts at the first handled record, so the consumer group join and, with a producer in this
        // process, the producer's client start-up (about 0.1 s) are not counted, as the bare loop's data loading is not.
        var startUp = Stopwatch.StartNew();
        while (learner.Status.Consumed == 0 && !producing.IsFaulted && startUp.Elapsed < TimeSpan.FromMinutes(1))
        {
            Thread.Sleep(1);
        }

        ThreadTimes before = ThreadTimes.Read();
        var clock = Stopwatch.StartNew();
        long consumedAtStart = learner.Status.Consumed;
        long produced = producing.GetAwaiter().GetResult();
        while (learner.Status.Consumed < produced && clock.Elapsed < TimeSpan.FromMinutes(5))
        {
            Thread.Sleep(10);
        }

        long consumed = learner.Status.Consumed;
        double rate = (consumed - consumedAtStart) / clock.Elapsed.TotalSeconds;
        CpuUsage cpu = ThreadTimes.Read().Since(before, clock.Elapsed);
        learner.Stop(TimeSpan.FromSeconds(10));
        if (consumed < produced)
        {
            throw new InvalidOperationException(
                $"The learner handled only {consumed} of {produced} records within 5 minutes. A partition may have dropped records past the embedded broker's retention of about 5 MiB.");
        }

        return (rate, cpu, consumed - consumedAtStart);
    }

    internal static List<LabeledExample> Load(IdxDataset dataset, int count)
    {
        var examples = new List<LabeledExample>(count);
        for (int index = 0; index < count; index++)
        {
            var features = new float[dataset.FeatureCount];
            ReadOnlySpan<byte> image = dataset.Image(index);
            for (int pixel = 0; pixel < features.Length; pixel++)
            {
                features[pixel] = image[pixel];
            }

            int label = dataset.Labels[index];
            examples.Add(new LabeledExample(index.ToString(CultureInfo.InvariantCulture), SplitTasks.TaskOf(label), label, features));
        }

        return examples;
    }
}
