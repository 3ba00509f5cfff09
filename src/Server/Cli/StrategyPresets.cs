using System.Diagnostics.CodeAnalysis;
using ContinualServe.Learner.Experiments;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Configuration;

namespace ContinualServe.Server.Cli;

/// <summary>
/// Resolves <c>--strategy</c> of <c>demo</c>, <c>learn</c> and <c>all</c>: the names of <c>continualserve experiment</c>,
/// so that a strategy in the results table can be watched streaming or deployed, and the learner's
/// <see cref="ReplayStrategy"/> names, which Learner:Trainer:Strategy has always taken.
/// </summary>
public static class StrategyPresets
{
    private const string StrategyKey = "Learner:Trainer:Strategy";
    private const string PresetKey = "Learner:Trainer:Preset";

    private static readonly Dictionary<string, string> SettingNames = new(StringComparer.OrdinalIgnoreCase)
    {
        [nameof(ReplayStrategy.Naive)] = "naive",
        [nameof(ReplayStrategy.ExperienceReplay)] = "er",
        [nameof(ReplayStrategy.Der)] = "der",
        [nameof(ReplayStrategy.DerPlusPlus)] = "derpp",
    };

    private static readonly string[] StreamingNames = ExperimentStrategy.KnownNames.Where(known => known != "joint").ToArray();

    /// <summary>Returns the experiment name that <paramref name="name"/> maps to, or null for an unknown name and for <c>joint</c>, which does not stream.</summary>
    public static string? Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        string experimentName = SettingNames.GetValueOrDefault(name, name.ToLowerInvariant());
        return StreamingNames.Contains(experimentName) ? experimentName : null;
    }

    public static string UnknownNameMessage(string name) =>
        $"Unknown strategy '{name}'; expected one of {string.Join(", ", StreamingNames)} (or {string.Join(", ", Enum.GetNames<ReplayStrategy>())}).";

    /// <summary>Returns the trainer settings of strategy <paramref name="name"/> over <paramref name="baseline"/>.</summary>
    public static TrainerOptions Named(string name, TrainerOptions baseline)
    {
        string experimentName = Find(name) ?? throw new ArgumentException(UnknownNameMessage(name), nameof(name));
        return ExperimentStrategy.Named(experimentName, baseline).Trainer;
    }

    /// <summary>Returns the hidden layer widths that strategy <paramref name="name"/> runs on, or null when it runs on the configured model.</summary>
    public static IReadOnlyList<int>? HiddenSizes(string name)
    {
        string experimentName = Find(name) ?? throw new ArgumentException(UnknownNameMessage(name), nameof(name));
        return ExperimentStrategy.Named(experimentName, new TrainerOptions()).HiddenSizes;
    }

    /// <summary>Trainer settings that an experiment name defines, in the order <see cref="TryExpand"/> writes them.</summary>
    private static readonly string[] PresetKeys =
    [
        nameof(TrainerOptions.AsymmetricNewLoss),
        nameof(TrainerOptions.BufferKind),
        nameof(TrainerOptions.StepsPerBatch),
        nameof(TrainerOptions.DistillationWeight),
        nameof(TrainerOptions.FeatureLearningRateScale),
    ];

    /// <summary>
    /// Applies <see cref="TrainerOptions.Preset"/>, read from appsettings, the environment or a Helm value: each
    /// setting the named strategy defines takes the preset's value unless <paramref name="trainerSection"/> sets it.
    /// An unknown name changes nothing, and the options validator reports it.
    /// </summary>
    public static void ApplyPreset(TrainerOptions trainer, IConfiguration trainerSection)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(trainerSection);
        if (string.IsNullOrEmpty(trainer.Preset) || Find(trainer.Preset) is null)
        {
            return;
        }

        TrainerOptions preset = Named(trainer.Preset, new TrainerOptions());
        foreach (string key in PresetKeys.Prepend(nameof(TrainerOptions.Strategy)))
        {
            if (trainerSection[key] is null)
            {
                System.Reflection.PropertyInfo property = typeof(TrainerOptions).GetProperty(key)!;
                property.SetValue(trainer, property.GetValue(preset));
            }
        }
    }

    /// <summary>
    /// Replaces a <c>--Learner:Trainer:Strategy=NAME</c> argument (the last one wins). A name of <c>experiment</c> becomes
    /// every trainer setting that strategy defines (replay strategy, asymmetric loss, buffer, steps per batch, LwF
    /// weight, feature learning-rate scale); a <see cref="ReplayStrategy"/> name sets only the replay strategy, as it always did. The settings are
    /// placed first, so that explicit <c>--Learner:Trainer:*</c> arguments still override them. Returns false with
    /// <paramref name="error"/> for an unknown name.
    /// </summary>
    public static bool TryExpand(string[] arguments, out string[] expanded, [NotNullWhen(false)] out string? error)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        string prefix = "--" + StrategyKey + "=";
        arguments = JoinStrategyValues(arguments);
        string? name = arguments.LastOrDefault(argument => argument.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))?[prefix.Length..];
        expanded = arguments;
        error = null;
        if (name is null)
        {
            return true;
        }

        if (Find(name) is null)
        {
            error = UnknownNameMessage(name);
            return false;
        }

        TrainerOptions preset = Named(name, new TrainerOptions());

        // The command line wins over a preset from appsettings or the environment, as over their other settings. An
        // explicit --Learner:Trainer:Preset argument comes later and still applies.
        var settings = new List<string> { prefix + preset.Strategy, $"--{PresetKey}=" };
        if (!SettingNames.ContainsKey(name))
        {
            // An experiment name defines the whole combination, so values from appsettings or the environment
            // (for example AsymmetricNewLoss=true left from 'best') do not mix into it.
            settings.AddRange(PresetKeys.Select(key => Setting(key, typeof(TrainerOptions).GetProperty(key)!.GetValue(preset))));
        }

        // A strategy with its own model width (analytic) sets it unless the arguments configure one.
        const string hiddenSizesKey = "--Learner:InitialSpec:HiddenSizes";
        if (HiddenSizes(name) is { } hiddenSizes && !arguments.Any(argument => argument.StartsWith(hiddenSizesKey, StringComparison.OrdinalIgnoreCase)))
        {
            settings.AddRange(hiddenSizes.Select((size, index) => FormattableString.Invariant($"{hiddenSizesKey}:{index}={size}")));
        }

        expanded = [.. settings, .. arguments.Where(argument => !argument.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))];
        return true;
    }

    // Configuration arguments may also give the value as the next token (--Learner:Trainer:Strategy best).
    private static string[] JoinStrategyValues(string[] arguments)
    {
        var joined = new List<string>(arguments.Length);
        for (int index = 0; index < arguments.Length; index++)
        {
            bool separated = string.Equals(arguments[index], "--" + StrategyKey, StringComparison.OrdinalIgnoreCase) && index + 1 < arguments.Length;
            joined.Add(separated ? $"--{StrategyKey}={arguments[++index]}" : arguments[index]);
        }

        return [.. joined];
    }

    private static string Setting(string key, object? value) => FormattableString.Invariant($"--Learner:Trainer:{key}={value}");
}
