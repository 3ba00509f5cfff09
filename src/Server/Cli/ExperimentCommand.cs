using System.CommandLine;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Experiments;
using ContinualServe.Learner.Replay;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using ContinualServe.Server.Demo;

namespace ContinualServe.Server.Cli;

/// <summary>
/// <c>continualserve experiment</c>: streams Fashion-MNIST through the continual trainer without Kafka for each
/// strategy and seed, prints ACC, BWT and forgetting, and writes the results section of a Markdown page with a
/// heatmap of each accuracy matrix and a chart of accuracy over the stream.
/// </summary>
public static class ExperimentCommand
{
    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "Directory with the Fashion-MNIST IDX files (.gz or plain).", DefaultValueFactory = _ => DemoOptions.DefaultDataDirectory };
        var protocol = new Option<ExperimentProtocol>("--protocol") { Description = "ClassIncremental (Split Fashion-MNIST) or DomainIncremental (permuted Fashion-MNIST).", DefaultValueFactory = _ => ExperimentProtocol.ClassIncremental };
        var strategies = new Option<string>("--strategies") { Description = "Comma-separated strategies: " + string.Join(", ", ExperimentStrategy.KnownNames) + ".", DefaultValueFactory = _ => string.Join(",", ExperimentStrategy.KnownNames) };
        var seeds = new Option<string>("--seeds") { Description = "Comma-separated seeds; each strategy runs once per seed.", DefaultValueFactory = _ => "1,2,3" };
        var validation = new Option<double>("--validation-fraction") { Description = "Hold out this fraction of the training data (by example-id hash) and evaluate on it instead of the test set; 0 uses the test set.", DefaultValueFactory = _ => 0.0 };
        var output = new Option<string?>("--output") { Description = "Markdown page whose experiment section is written (created if missing); pictures go to a folder beside it. Omit to only print." };
        var jointEpochs = new Option<int>("--joint-epochs") { Description = "Epochs of the joint upper bound.", DefaultValueFactory = _ => 5 };
        var capacity = new Option<int>("--replay-capacity") { Description = "Replay buffer capacity, in examples.", DefaultValueFactory = _ => 500 };
        var buffer = new Option<ReplayBufferKind>("--buffer") { Description = "Replay buffer of the replay strategies: Reservoir or ClassBalanced ('best' always uses ClassBalanced).", DefaultValueFactory = _ => ReplayBufferKind.Reservoir };
        var replayBatch = new Option<int>("--replay-batch-size") { Description = "Replayed examples drawn per replay loss term per step.", DefaultValueFactory = _ => 32 };
        var steps = new Option<int>("--steps-per-batch") { Description = "Gradient steps per incoming batch.", DefaultValueFactory = _ => 1 };
        var asymmetric = new Option<bool>("--asymmetric") { Description = "Cross-entropy of new examples over the classes of their batch only (ER-ACE)." };
        var shift = new Option<int>("--replay-shift") { Description = "Random shift of replayed images, in pixels (0 disables).", DefaultValueFactory = _ => 0 };
        var alpha = new Option<double>("--alpha") { Description = "Weight of the replay logit MSE (DER, DER++).", DefaultValueFactory = _ => 0.5 };
        var beta = new Option<double>("--beta") { Description = "Weight of the replay label cross-entropy (ER, DER++).", DefaultValueFactory = _ => 1.0 };
        var lwfWeight = new Option<double>("--lwf-weight") { Description = "Weight of LwF distillation in the lwf strategies.", DefaultValueFactory = _ => 1.0 };
        var lwfTemperature = new Option<double>("--lwf-temperature") { Description = "Softmax temperature of LwF distillation.", DefaultValueFactory = _ => 2.0 };
        var learningRate = new Option<double>("--learning-rate") { Description = "Adam learning rate.", DefaultValueFactory = _ => 1e-3 };
        var featureScale = new Option<double>("--feature-lr-scale") { Description = "Learning rate of the layers below the head, as a multiple of --learning-rate ('best' uses at most " + ExperimentStrategy.BestFeatureLearningRateScale.ToString(CultureInfo.InvariantCulture) + ").", DefaultValueFactory = _ => 1.0 };
        var analyticWidth = new Option<int>("--analytic-width") { Description = "Random features (hidden units) of the analytic strategy; its running sums take about 8 x width^2 bytes.", DefaultValueFactory = _ => ExperimentStrategy.DefaultAnalyticWidth };
        var analyticRegularization = new Option<double>("--analytic-regularization") { Description = "Ridge penalty of the analytic strategy's head.", DefaultValueFactory = _ => new TrainerOptions().AnalyticRegularization };
        var threads = new Option<int>("--threads") { Description = "libtorch CPU threads; 0 keeps libtorch's default.", DefaultValueFactory = _ => 1 };
        var command = new Command("experiment", "Measure continual-learning strategies offline on Fashion-MNIST (ACC, BWT, forgetting over seeds) and write a results page.")
        {
            data, protocol, strategies, seeds, validation, output, jointEpochs, capacity, buffer, replayBatch, steps, asymmetric, shift,
            alpha, beta, lwfWeight, lwfTemperature, learningRate, featureScale, analyticWidth, analyticRegularization, threads,
        };
        command.SetAction(result =>
        {
            var baseline = new TrainerOptions
            {
                ReplayCapacity = result.GetValue(capacity),
                BufferKind = result.GetValue(buffer),
                ReplayBatchSize = result.GetValue(replayBatch),
                StepsPerBatch = result.GetValue(steps),
                AsymmetricNewLoss = result.GetValue(asymmetric),
                ReplayShiftPixels = result.GetValue(shift),
                ReplayLogitWeight = result.GetValue(alpha),
                ReplayLabelWeight = result.GetValue(beta),
                DistillationWeight = result.GetValue(lwfWeight),
                DistillationTemperature = result.GetValue(lwfTemperature),
                LearningRate = result.GetValue(learningRate),
                FeatureLearningRateScale = result.GetValue(featureScale),
                AnalyticRegularization = result.GetValue(analyticRegularization),
            };
            var options = new ExperimentOptions
            {
                DataDirectory = result.GetValue(data)!,
                Protocol = result.GetValue(protocol),
                Strategies = SplitList(result.GetValue(strategies)!),
                ValidationFraction = result.GetValue(validation),
                JointEpochs = result.GetValue(jointEpochs),
                Baseline = baseline,
                AnalyticWidth = result.GetValue(analyticWidth),
                Threads = result.GetValue(threads),
            };
            string? outputPath = result.GetValue(output);
            string? error = CheckOptions(options, result.GetValue(seeds)!, out int[] seedList) ?? FindOutputError(outputPath);
            if (error is not null)
            {
                Console.Error.WriteLine(error);
                return RoleCommandLine.InvalidConfigurationExitCode;
            }

            options.Seeds = seedList;
            return Run(options, outputPath);
        });
        return command;
    }

    private static int Run(ExperimentOptions options, string? outputPath)
    {
        if (options.Threads > 0)
        {
            TorchSharp.torch.set_num_threads(options.Threads);
        }

        Console.WriteLine(options.ValidationFraction > 0
            ? FormattableString.Invariant($"Evaluating on the validation split: {options.ValidationFraction:P0} of the training images, held out by example-id hash.")
            : "Evaluating on the test set (t10k).");
        IdxDataset training;
        IdxDataset test;
        try
        {
            (training, test) = DemoRunner.LoadData(options.DataDirectory);
        }
        catch (InvalidDataException exception)
        {
            Console.Error.WriteLine("The experiment did not start: " + exception.Message);
            return RoleCommandLine.InvalidConfigurationExitCode;
        }

        ExperimentData data = ExperimentData.Create(training, test, options.Protocol, taskCount: 5, options.ValidationFraction);
        var runner = new ExperimentRunner(data, new ModelSpec(), TorchSharp.torch.CPU);
        List<ExperimentResult> results = [];
        foreach (string name in options.Strategies)
        {
            foreach (int seed in options.Seeds)
            {
                ExperimentStrategy strategy = ExperimentStrategy.Named(name, options.Baseline, options.JointEpochs, options.AnalyticWidth);
                ExperimentResult run = runner.Run(strategy, seed);
                results.Add(run);
                Console.WriteLine(ExperimentReport.FormatRun(run));
            }
        }

        ExperimentSummary summary = ExperimentSummary.From(options, results);
        Console.WriteLine(ExperimentReport.FormatTable(summary));
        if (outputPath is not null)
        {
            ExperimentReport.Write(summary, outputPath);
            Console.WriteLine($"Results written to {outputPath}");
        }

        return 0;
    }

    // Checks the settings before any run, because an invalid one would otherwise throw only after earlier strategies had run for minutes.
    private static string? CheckOptions(ExperimentOptions options, string seeds, out int[] seedList)
    {
        seedList = [];
        string knownNames = string.Join(", ", ExperimentStrategy.KnownNames);
        if (options.Strategies.Count == 0)
        {
            return $"--strategies: no strategy given. Expected a comma-separated list of {knownNames}.";
        }

        string? unknown = options.Strategies.FirstOrDefault(name => !ExperimentStrategy.KnownNames.Contains(name));
        if (unknown is not null)
        {
            return $"--strategies: unknown strategy '{unknown}'; expected a comma-separated list of {knownNames}.";
        }

        var parsed = new List<int>();
        foreach (string seed in SplitList(seeds))
        {
            if (!int.TryParse(seed, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value))
            {
                return $"--seeds: '{seed}' is not a whole number; expected a comma-separated list such as 1,2,3.";
            }

            parsed.Add(value);
        }

        if (parsed.Count == 0)
        {
            return "--seeds: no seed given; expected a comma-separated list such as 1,2,3.";
        }

        // A repeated seed repeats an identical run, so the spread over seeds would look smaller than it is.
        int? repeated = parsed.GroupBy(seed => seed).Where(group => group.Count() > 1).Select(group => (int?)group.Key).FirstOrDefault();
        if (repeated is not null)
        {
            return $"--seeds: seed {repeated} is given more than once. Give each seed once, such as 1,2,3.";
        }

        // Written so that NaN fails the check too.
        if (!(options.ValidationFraction >= 0 && options.ValidationFraction < 1))
        {
            return $"--validation-fraction must be at least 0 and below 1, but it is {options.ValidationFraction.ToString(CultureInfo.InvariantCulture)}.";
        }

        if (options.JointEpochs < 1)
        {
            return $"--joint-epochs must be at least 1, but it is {options.JointEpochs}.";
        }

        if (options.AnalyticWidth is < 1 or > ContinualTrainer.MaxAnalyticFeatures)
        {
            return $"--analytic-width must be between 1 and {ContinualTrainer.MaxAnalyticFeatures}, but it is {options.AnalyticWidth}.";
        }

        if (options.Threads < 0)
        {
            return $"--threads must be 0 (libtorch's default) or more, but it is {options.Threads}.";
        }

        if (FindInvalidTrainerSetting(options.Baseline) is { } invalid)
        {
            return invalid;
        }

        seedList = [.. parsed];
        return IdxDataset.FindMissingFashionMnist(options.DataDirectory);
    }

    /// <summary>
    /// Returns why the results page <paramref name="outputPath"/> cannot be written, or null when it can or when no page
    /// is requested. The page is written after all runs, so this check runs before the first one.
    /// This creates the page's directory, as writing the page would.
    /// </summary>
    internal static string? FindOutputError(string? outputPath)
    {
        if (outputPath is null)
        {
            return null;
        }

        if (string.IsNullOrWhiteSpace(outputPath))
        {
            return "--output is empty. Give the path of a Markdown page, such as docs/results.md, or omit --output to only print.";
        }

        try
        {
            string page = Path.GetFullPath(outputPath);
            if (Directory.Exists(page))
            {
                return $"--output: '{outputPath}' is a directory. Give the path of a Markdown page, such as docs/results.md.";
            }

            Directory.CreateDirectory(Path.GetDirectoryName(page)!);
            if (File.Exists(page))
            {
                using FileStream existing = File.Open(page, FileMode.Open, FileAccess.ReadWrite);
            }
            else
            {
                using FileStream probe = File.Create(page, 1, FileOptions.DeleteOnClose);
            }
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return $"--output: failed to open '{outputPath}' for writing: {exception.Message}";
        }

        return null;
    }

    // The command-line option of each trainer setting that demo or experiment reads from its command line.
    private static readonly Dictionary<string, string> TrainerOptionNames = new()
    {
        [nameof(TrainerOptions.ReplayCapacity)] = "--replay-capacity",
        [nameof(TrainerOptions.ReplayBatchSize)] = "--replay-batch-size",
        [nameof(TrainerOptions.StepsPerBatch)] = "--steps-per-batch",
        [nameof(TrainerOptions.ReplayShiftPixels)] = "--replay-shift",
        [nameof(TrainerOptions.ReplayLogitWeight)] = "--alpha",
        [nameof(TrainerOptions.ReplayLabelWeight)] = "--beta",
        [nameof(TrainerOptions.DistillationWeight)] = "--lwf-weight",
        [nameof(TrainerOptions.DistillationTemperature)] = "--lwf-temperature",
        [nameof(TrainerOptions.LearningRate)] = "--learning-rate",
        [nameof(TrainerOptions.FeatureLearningRateScale)] = "--feature-lr-scale",
        [nameof(TrainerOptions.AnalyticRegularization)] = "--analytic-regularization",
    };

    /// <summary>
    /// Returns the messages of the trainer settings outside their documented ranges, each after the command-line
    /// option that sets it, or null when all are valid.
    /// </summary>
    internal static string? FindInvalidTrainerSetting(TrainerOptions trainer)
    {
        var context = new ValidationContext(trainer);
        var problems = new List<ValidationResult>();
        if (Validator.TryValidateObject(trainer, context, problems, validateAllProperties: true))
        {
            return null;
        }

        IEnumerable<string> messages = problems.Select(problem =>
            problem.MemberNames.FirstOrDefault() is { } member && TrainerOptionNames.TryGetValue(member, out string? option)
                ? $"{option}: {problem.ErrorMessage}"
                : problem.ErrorMessage ?? "");
        return string.Join(" ", messages);
    }

    private static string[] SplitList(string value) =>
        value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
