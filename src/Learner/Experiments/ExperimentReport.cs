using System.Globalization;
using System.Text;
using ContinualServe.Learner.Training;
using ContinualServe.Model;

namespace ContinualServe.Learner.Experiments;

/// <summary>
/// Formats experiment results as text and writes them into a Markdown page: a table of ACC, BWT and forgetting
/// (mean ± standard deviation over seeds), the mean accuracy matrices, and PNG pictures in a folder beside the page.
/// The section of each protocol sits between its own marker comments, so rerunning replaces only that section and
/// the rest of the page stays as it is.
/// </summary>
public static class ExperimentReport
{
    public static string FormatRun(ExperimentResult run)
    {
        ArgumentNullException.ThrowIfNull(run);
        string accuracies = string.Join(" ", run.FinalAccuracies.Select((accuracy, index) => Invariant($"a{index + 1}={accuracy:F3}")));
        if (run.Matrix is null)
        {
            return Invariant($"{run.Strategy,-8} seed {run.Seed}: ACC {run.AverageAccuracy:F4} {accuracies} ({run.Duration.TotalSeconds:F1} s)");
        }

        IReadOnlyDictionary<int, double> forgetting = run.Matrix.Forgetting();
        string perTask = string.Join(" ", run.Matrix.Tasks.Select(task => Invariant($"f{task}={forgetting[task]:F3}")));
        return Invariant($"{run.Strategy,-8} seed {run.Seed}: ACC {run.AverageAccuracy:F4} BWT {run.Matrix.BackwardTransfer():F4} {perTask} {accuracies} ({run.Duration.TotalSeconds:F1} s)");
    }

    public static string FormatTable(ExperimentSummary summary)
    {
        ArgumentNullException.ThrowIfNull(summary);
        var text = new StringBuilder();
        text.AppendLine("| strategy | ACC | BWT | mean forgetting | forgetting, task 1 | seconds per run |");
        text.AppendLine("|---|---|---|---|---|---|");
        foreach (StrategySummary strategy in summary.Strategies)
        {
            string bwt = strategy.HasForgetting ? strategy.BackwardTransfer.ToString() : "n/a";
            string forgetting = strategy.HasForgetting ? strategy.MeanForgetting.ToString() : "n/a";
            string first = strategy.HasForgetting ? strategy.FirstTaskForgetting.ToString() : "n/a";
            text.AppendLine(Invariant($"| {strategy.Strategy} | {strategy.AverageAccuracy} | {bwt} | {forgetting} | {first} | {strategy.MeanDuration.TotalSeconds:F1} |"));
        }

        return text.ToString();
    }

    /// <summary>Writes the pictures and replaces (or appends) this protocol's section of <paramref name="pagePath"/>.</summary>
    public static void Write(ExperimentSummary summary, string pagePath)
    {
        ArgumentNullException.ThrowIfNull(summary);
        string pageDirectory = Path.GetDirectoryName(Path.GetFullPath(pagePath))!;
        string pictureFolder = Path.GetFileNameWithoutExtension(pagePath);
        string pictureDirectory = Path.Combine(pageDirectory, pictureFolder);
        Directory.CreateDirectory(pictureDirectory);
        string protocol = summary.Options.Protocol == ExperimentProtocol.ClassIncremental ? "class-incremental" : "domain-incremental";

        var section = new StringBuilder();
        section.AppendLine(Heading(summary));
        section.AppendLine();
        section.AppendLine(Description(summary));
        section.AppendLine();
        section.Append(FormatTable(summary));
        section.AppendLine();

        string streamPicture = $"{protocol}-accuracy-over-stream.png";
        ExperimentCharts.SaveAccuracyOverStream(summary, Path.Combine(pictureDirectory, streamPicture));
        section.AppendLine(Invariant($"![Mean accuracy over seen tasks along the stream]({pictureFolder}/{streamPicture})"));
        section.AppendLine();
        foreach (StrategySummary strategy in summary.Strategies)
        {
            string picture = $"{protocol}-{strategy.Strategy}-matrix.png";
            ExperimentCharts.SaveMatrixHeatmap(strategy, Path.Combine(pictureDirectory, picture));
            section.AppendLine(Invariant($"**{strategy.Strategy}**: accuracy matrix R[i][j], mean over seeds ![{strategy.Strategy} accuracy matrix]({pictureFolder}/{picture})"));
            section.AppendLine();
            section.Append(MatrixTable(strategy.MeanMatrix));
            section.AppendLine();
        }

        ReplaceSection(pagePath, protocol, section.ToString().TrimEnd());
    }

    private static string Heading(ExperimentSummary summary) => summary.Options.Protocol == ExperimentProtocol.ClassIncremental
        ? "## Offline experiment: Split Fashion-MNIST, class-incremental"
        : "## Offline experiment: permuted Fashion-MNIST, domain-incremental";

    private static string Description(ExperimentSummary summary)
    {
        ExperimentOptions options = summary.Options;
        string evaluation = options.ValidationFraction > 0
            ? Invariant($"a validation split ({options.ValidationFraction:P0} of the training data, chosen by a hash of the example id)")
            : "the 10,000 test images, grouped by task";
        string validation = options.ValidationFraction > 0 ? Invariant($" --validation-fraction {options.ValidationFraction}") : "";
        if (options.AnalyticWidth != ExperimentStrategy.DefaultAnalyticWidth && options.Strategies.Contains("analytic"))
        {
            validation += Invariant($" --analytic-width {options.AnalyticWidth}");
        }

        if (options.Baseline.AnalyticRegularization != new TrainerOptions().AnalyticRegularization && options.Strategies.Contains("analytic"))
        {
            validation += Invariant($" --analytic-regularization {options.Baseline.AnalyticRegularization}");
        }

        return Invariant(
            $"`continualserve experiment --protocol {options.Protocol} --strategies {string.Join(',', options.Strategies)} --seeds {string.Join(',', options.Seeds)}{validation}`, ") +
            Invariant($"finished {summary.FinishedAt:yyyy-MM-dd HH:mm} UTC. Each continual strategy sees the stream once (batch {options.Baseline.BatchSize}, Adam {options.Baseline.LearningRate}, ") +
            Invariant($"MLP 784-256-256-10, replay buffer of {options.Baseline.ReplayCapacity} examples); joint trains on all tasks shuffled for {options.JointEpochs} epochs. ") +
            (options.Strategies.Contains("analytic")
                ? Invariant($"`analytic` stores no examples: its MLP 784-{options.AnalyticWidth}-10 keeps its random hidden layer, and its head is the ridge regression fitted to running sums over every example (about {ContinualTrainer.AnalyticSumBytes(options.AnalyticWidth, ModelSpec.FashionMnistLabels.Count) / 1e6:0.#} MB). ")
                : "") +
            Invariant($"Accuracy is measured on {evaluation}. Values are mean ± sample standard deviation over the seeds. ") +
            "ACC = mean_j R[T][j]; BWT = mean_{j<T} (R[T][j] − R[j][j]); forgetting f_j = max_{l<T} R[l][j] − R[T][j], averaged over tasks 1 to T − 1.";
    }

    private static string MatrixTable(double[,] matrix)
    {
        int rows = matrix.GetLength(0);
        int columns = matrix.GetLength(1);
        var text = new StringBuilder();
        text.Append("| after task |");
        for (int column = 0; column < columns; column++)
        {
            text.Append(Invariant($" task {column + 1} |"));
        }

        text.AppendLine();
        text.AppendLine("|---" + string.Concat(Enumerable.Repeat("|---", columns)) + "|");
        for (int row = 0; row < rows; row++)
        {
            text.Append(Invariant($"| {(rows == 1 ? columns : row + 1)} |"));
            for (int column = 0; column < columns; column++)
            {
                text.Append(double.IsNaN(matrix[row, column]) ? " |" : Invariant($" {matrix[row, column]:F3} |"));
            }

            text.AppendLine();
        }

        return text.ToString();
    }

    private static void ReplaceSection(string pagePath, string protocol, string section)
    {
        string begin = $"<!-- experiment {protocol}: begin (written by continualserve experiment) -->";
        string end = $"<!-- experiment {protocol}: end -->";
        string page = File.Exists(pagePath) ? File.ReadAllText(pagePath) : "# Results\n";
        string block = begin + "\n" + section + "\n" + end;
        int start = page.IndexOf(begin, StringComparison.Ordinal);
        int finish = page.IndexOf(end, StringComparison.Ordinal);
        page = start >= 0 && finish > start
            ? page[..start] + block + page[(finish + end.Length)..]
            : page.TrimEnd() + "\n\n" + block + "\n";
        File.WriteAllText(pagePath, page);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
