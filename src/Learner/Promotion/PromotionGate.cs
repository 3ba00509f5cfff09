using System.Globalization;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Evaluation;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Promotion;

/// <summary>
/// Decides whether a candidate version may replace the live one: its forgetting on every seen task, the drop of
/// its average accuracy below the live version's, its average accuracy itself, and its accuracy on the operator's
/// golden set (read from the model store directory) must stay within <see cref="PromotionOptions"/>. Logs every decision with its numbers
/// and counts it in <c>continualserve_promotions_total{decision}</c>.
/// </summary>
public sealed partial class PromotionGate
{
    private readonly PromotionOptions options;
    private readonly ModelSpec spec;
    private readonly string storeDirectory;
    private readonly ILogger logger;
    private readonly Func<string, byte[]> readFile;
    private GoldenSet? cachedGoldenSet;
    private byte[]? cachedGoldenSetContent;

    // The message of the golden-set failure that the last review found, or null when it read the golden set or found
    // none. Error 232 is logged when the message changes, so the same failure is logged once, not at every round.
    private string? loggedGoldenSetError;

    /// <param name="options">The limits that a candidate must stay within.</param>
    /// <param name="spec">The model's spec, which the golden set must fit.</param>
    /// <param name="storeDirectory">The model store directory that contains the golden set.</param>
    /// <param name="logger">Logs every decision and an unreadable golden set.</param>
    /// <param name="readFile">
    /// Reads the golden set's file, at each <see cref="ReadGoldenSet"/>; <see cref="File.ReadAllBytes(string)"/> when null. The learner passes
    /// a read under its stall watch.
    /// </param>
    public PromotionGate(PromotionOptions options, ModelSpec spec, string storeDirectory, ILogger logger, Func<string, byte[]>? readFile = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(storeDirectory);
        ArgumentNullException.ThrowIfNull(logger);
        this.options = options;
        this.spec = spec;
        this.storeDirectory = storeDirectory;
        this.logger = logger;
        this.readFile = readFile ?? File.ReadAllBytes;
    }

    /// <summary>
    /// Measures <paramref name="candidate"/> on the golden set, with forward passes split as <paramref name="batching"/>
    /// sets, decides on it against the live version's evaluation, then logs and counts the decision.
    /// </summary>
    public PromotionDecision Review(
        nn.Module<Tensor, Tensor> candidate, Device device, EvaluationSummary candidateEvaluation, EvaluationSummary? liveEvaluation, ForwardBatching? batching = null) =>
        Review(candidate, device, candidateEvaluation, liveEvaluation, ReadGoldenSet(), batching);

    /// <summary>
    /// Measures <paramref name="candidate"/> on <paramref name="golden"/>, a golden set read before by
    /// <see cref="ReadGoldenSet"/>, then decides, logs and counts as the other overload does.
    /// </summary>
    public PromotionDecision Review(
        nn.Module<Tensor, Tensor> candidate,
        Device device,
        EvaluationSummary candidateEvaluation,
        EvaluationSummary? liveEvaluation,
        GoldenSetRead golden,
        ForwardBatching? batching = null)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(candidateEvaluation);
        double? goldenAccuracy = golden.Set is null ? null : GoldenAccuracy(candidate, device, golden.Set, batching);

        // Fail closed: without a usable golden set the floor cannot be checked. A gate that is off promotes anyway, so it
        // logs no error.
        string? goldenSetError = golden.Failure?.Message;
        if (golden.Failure is not null && options.Enabled && !string.Equals(goldenSetError, loggedGoldenSetError, StringComparison.Ordinal))
        {
            LogGoldenSetUnreadable(logger, golden.Failure, storeDirectory);
        }

        loggedGoldenSetError = goldenSetError;

        PromotionDecision decision = Decide(candidateEvaluation, liveEvaluation, goldenAccuracy, goldenSetError);
        ContinualServeMetrics.Promotions.WithLabels(decision.Label).Inc();
        foreach (string kind in decision.ReasonKinds)
        {
            ContinualServeMetrics.PromotionRejections.WithLabels(kind).Inc();
        }

        string goldenText = decision.GoldenAccuracy?.ToString("F4", CultureInfo.InvariantCulture) ?? "none";
        string live = decision.LiveAverageAccuracy?.ToString("F4", CultureInfo.InvariantCulture) ?? "none";
        if (decision.Promoted)
        {
            LogPromoted(logger, decision.AverageAccuracy, live, decision.MaxForgetting, decision.MaxForgettingTask ?? 0, goldenText);
        }
        else
        {
            LogRejected(logger, string.Join("; ", decision.Reasons), decision.AverageAccuracy, live, decision.MaxForgetting, decision.MaxForgettingTask ?? 0, goldenText);
        }

        return decision;
    }

    /// <summary>Whether the gate decides at all; when false, every candidate is promoted.</summary>
    public bool Enabled => options.Enabled;

    /// <summary>
    /// Reads the golden set from the store directory once, for <see cref="Review(nn.Module{Tensor, Tensor}, Device, EvaluationSummary, EvaluationSummary?, GoldenSetRead, ForwardBatching?)"/>.
    /// The file is parsed again only when its content changed since the last read. Neither logs nor counts.
    /// </summary>
    public GoldenSetRead ReadGoldenSet()
    {
        try
        {
            return new GoldenSetRead(LoadGoldenSet(), Failure: null);
        }
        catch (Exception exception) when (IsGoldenSetFailure(exception))
        {
            return new GoldenSetRead(Set: null, exception);
        }
    }

    /// <summary>Applies the limits to the numbers alone; neither logs nor counts.</summary>
    public PromotionDecision Decide(EvaluationSummary candidate, EvaluationSummary? live, double? goldenAccuracy, string? goldenSetError = null)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        List<string> reasons = [];
        List<string> reasonKinds = [];
        (int task, double forgetting) worst = candidate.Forgetting.Count == 0
            ? (0, 0)
            : candidate.Forgetting.Select(pair => (pair.Key, pair.Value)).MaxBy(pair => pair.Value);
        double? liveAccuracy = live is null || live.AccuracyMatrix.Count == 0 ? null : live.AverageAccuracy;
        if (worst.forgetting > options.MaxForgetting)
        {
            reasons.Add(Invariant($"forgetting {worst.forgetting:F4} on task {worst.task} exceeds {options.MaxForgetting:F4}"));
            reasonKinds.Add("forgetting");
        }

        double? comparable = liveAccuracy is null ? null : AverageOverTasks(candidate, live!.Tasks);
        if (comparable is not null && liveAccuracy!.Value - comparable.Value > options.MaxAverageAccuracyDrop)
        {
            reasons.Add(Invariant($"average accuracy {comparable.Value:F4} on the live version's tasks is more than {options.MaxAverageAccuracyDrop:F4} below the live {liveAccuracy.Value:F4}"));
            reasonKinds.Add("accuracy_drop");
        }

        // The floor leaves out a task that started after the live version, as the drop check does. Without a live version
        // it applies to every seen task, because then nothing else compares the candidate with anything.
        double? floored = liveAccuracy is null
            ? (candidate.AccuracyMatrix.Count == 0 ? null : candidate.AverageAccuracy)
            : comparable;
        if (floored is not null && floored.Value < options.MinAverageAccuracy)
        {
            string over = liveAccuracy is null ? "every seen task" : "the live version's tasks";
            reasons.Add(Invariant($"average accuracy {floored.Value:F4} on {over} is below {options.MinAverageAccuracy:F4}"));
            reasonKinds.Add("accuracy_floor");
        }

        if (goldenAccuracy is not null && goldenAccuracy.Value < options.MinGoldenAccuracy)
        {
            reasons.Add(Invariant($"golden-set accuracy {goldenAccuracy.Value:F4} is below {options.MinGoldenAccuracy:F4}"));
            reasonKinds.Add("golden_set");
        }

        if (goldenSetError is not null)
        {
            reasons.Add("golden set unreadable: " + goldenSetError);
            reasonKinds.Add("golden_set_unreadable");
        }

        bool promoted = !options.Enabled || reasons.Count == 0;
        return new PromotionDecision(
            promoted,
            promoted ? [] : reasons,
            candidate.AverageAccuracy,
            liveAccuracy,
            worst.forgetting,
            candidate.Forgetting.Count == 0 ? null : worst.task,
            goldenAccuracy)
        {
            ReasonKinds = promoted ? [] : reasonKinds,
        };
    }

    // The candidate's current accuracy averaged over the tasks the live version was evaluated on. A task that
    // started after the live version would otherwise pull the candidate's average down while it is still being
    // learned, and every first round of a new task would be rejected.
    private static double? AverageOverTasks(EvaluationSummary candidate, IReadOnlyList<int> tasks)
    {
        if (candidate.AccuracyMatrix.Count == 0)
        {
            return null;
        }

        IReadOnlyList<double> current = candidate.AccuracyMatrix[^1];
        double[] values = tasks
            .Select(task => candidate.Tasks.ToList().IndexOf(task))
            .Where(column => column >= 0 && column < current.Count)
            .Select(column => current[column])
            .ToArray();
        return values.Length == 0 ? null : values.Average();
    }

    // Parses golden-set.json again only when its content changed. The write time cannot tell two uploads apart,
    // because Linux advances file times only every few milliseconds, so two uploads in one tick get the same time.
    // The failures of LoadGoldenSet that leave the golden set unusable. .NET raises UnauthorizedAccessException for a
    // directory at the path and for a file without read permission.
    private static bool IsGoldenSetFailure(Exception exception) =>
        exception is InvalidDataException or IOException or UnauthorizedAccessException or System.Text.Json.JsonException;

    private GoldenSet? LoadGoldenSet()
    {
        string path = Path.Combine(storeDirectory, GoldenSet.FileName);
        byte[] content;
        try
        {
            content = readFile(path);
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException)
        {
            cachedGoldenSet = null;
            cachedGoldenSetContent = null;
            return null;
        }

        if (cachedGoldenSet is null || cachedGoldenSetContent is null || !content.AsSpan().SequenceEqual(cachedGoldenSetContent))
        {
            GoldenSet loaded = GoldenSet.Parse(content, path);
            loaded.Validate(spec);
            cachedGoldenSet = loaded;
            cachedGoldenSetContent = content;
        }

        return cachedGoldenSet;
    }

    private static double GoldenAccuracy(nn.Module<Tensor, Tensor> candidate, Device device, GoldenSet golden, ForwardBatching? batching)
    {
        LabeledExample[] examples = golden.Examples
            .Select((example, index) => new LabeledExample("golden-" + index.ToString(CultureInfo.InvariantCulture), 0, example.Label, example.Features))
            .ToArray();
        bool wasTraining = candidate.training;
        candidate.eval();
        try
        {
            return HoldoutEvaluator.Accuracy(candidate, device, examples, batching);
        }
        finally
        {
            candidate.train(wasTraining);
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    [LoggerMessage(EventId = 230, Level = LogLevel.Information, Message = "Candidate promoted: ACC {AverageAccuracy:F4} (live {LiveAverageAccuracy}), max forgetting {MaxForgetting:F4} on task {Task}, golden-set accuracy {GoldenAccuracy}")]
    private static partial void LogPromoted(ILogger logger, double averageAccuracy, string liveAverageAccuracy, double maxForgetting, int task, string goldenAccuracy);

    [LoggerMessage(EventId = 231, Level = LogLevel.Warning, Message = "Candidate rejected ({Reasons}): ACC {AverageAccuracy:F4} (live {LiveAverageAccuracy}), max forgetting {MaxForgetting:F4} on task {Task}, golden-set accuracy {GoldenAccuracy}; the live version stays")]
    private static partial void LogRejected(ILogger logger, string reasons, double averageAccuracy, string liveAverageAccuracy, double maxForgetting, int task, string goldenAccuracy);

    [LoggerMessage(EventId = 232, Level = LogLevel.Error, Message = "The golden set in {Directory} cannot be read or does not fit the model; candidates are rejected until it is fixed. This error is logged again only when its message changes or after a review without it")]
    private static partial void LogGoldenSetUnreadable(ILogger logger, Exception exception, string directory);
}
