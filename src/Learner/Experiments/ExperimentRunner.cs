using ContinualServe.Learner.Data;
using ContinualServe.Learner.Evaluation;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Experiments;

/// <summary>
/// Streams an experiment's tasks through <see cref="ContinualTrainer"/> without Kafka, in batches of the trainer's
/// batch size, and measures the accuracy matrix after each task and the running average accuracy along the way.
/// Runs on the calling thread (TorchSharp's dispose scopes are per thread).
/// </summary>
public sealed class ExperimentRunner
{
    private readonly ExperimentData data;
    private readonly ModelSpec spec;
    private readonly Device device;

    public ExperimentRunner(ExperimentData data, ModelSpec spec, Device device)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(spec);
        this.data = data;
        this.spec = spec;
        this.device = device;
    }

    /// <summary>Training examples between two points of the accuracy-over-stream curve.</summary>
    public int StreamPointInterval { get; init; } = 2000;

    public ExperimentResult Run(ExperimentStrategy strategy, int seed)
    {
        ArgumentNullException.ThrowIfNull(strategy);
        var started = System.Diagnostics.Stopwatch.StartNew();
        strategy.Trainer.Seed = seed;
        torch.manual_seed(seed);
        ModelSpec runSpec = strategy.HiddenSizes is null ? spec : spec with { HiddenSizes = strategy.HiddenSizes };
        using nn.Module<Tensor, Tensor> initial = ModelFactory.Create(runSpec);
        using var trainer = new ContinualTrainer(runSpec, initial, device, strategy.Trainer);
        List<StreamPoint> points = [];
        AccuracyMatrix? matrix = null;
        if (strategy.IsJoint)
        {
            TrainJointly(trainer, strategy.Trainer.BatchSize, strategy.JointEpochs, seed);
        }
        else
        {
            matrix = new AccuracyMatrix();
            StreamTasks(trainer, strategy.Trainer.BatchSize, matrix, points);
        }

        double[] final = Evaluate(trainer, data.TaskCount).OrderBy(pair => pair.Key).Select(pair => pair.Value).ToArray();
        return new ExperimentResult(strategy.Name, seed, matrix, final, points, started.Elapsed);
    }

    private void StreamTasks(ContinualTrainer trainer, int batchSize, AccuracyMatrix matrix, List<StreamPoint> points)
    {
        long trained = 0;
        long nextPoint = StreamPointInterval;
        for (int task = 1; task <= data.TaskCount; task++)
        {
            LabeledExample[] examples = data.TrainingByTask[task - 1].ToArray();
            for (int start = 0; start < examples.Length; start += batchSize)
            {
                int size = Math.Min(batchSize, examples.Length - start);
                _ = trainer.Step(new ArraySegment<LabeledExample>(examples, start, size));
                trained += size;
                if (trained >= nextPoint)
                {
                    points.Add(new StreamPoint(trained, Evaluate(trainer, task).Values.Average()));
                    nextPoint += StreamPointInterval;
                }
            }

            IReadOnlyDictionary<int, double> accuracies = Evaluate(trainer, task);
            matrix.Record(task, accuracies);
            points.Add(new StreamPoint(trained, accuracies.Values.Average()));
        }
    }

    private void TrainJointly(ContinualTrainer trainer, int batchSize, int epochs, int seed)
    {
        LabeledExample[] all = data.TrainingByTask.SelectMany(task => task).ToArray();
        var random = new Random(seed);
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            random.Shuffle(all);
            for (int start = 0; start < all.Length; start += batchSize)
            {
                int size = Math.Min(batchSize, all.Length - start);
                _ = trainer.Step(new ArraySegment<LabeledExample>(all, start, size));
            }
        }
    }

    // Accuracy on the evaluation set of every task up to lastTask.
    private Dictionary<int, double> Evaluate(ContinualTrainer trainer, int lastTask)
    {
        var accuracies = new Dictionary<int, double>();
        bool wasTraining = trainer.Module.training;
        trainer.Module.eval();
        for (int task = 1; task <= lastTask; task++)
        {
            accuracies[task] = HoldoutEvaluator.Accuracy(trainer.Module, device, data.EvaluationByTask[task - 1]);
        }

        trainer.Module.train(wasTraining);
        return accuracies;
    }
}
