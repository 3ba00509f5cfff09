using System.ComponentModel.DataAnnotations;
using ContinualServe.Learner;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using ContinualServe.Server.Cli;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Distribution;

/// <summary>
/// Checks the attributes of the nested sections of <see cref="LearnerOptions"/> (Trainer, Checkpoint, Promotion,
/// InitialSpec) and the initial model spec's own rules (a known architecture, a positive input scale). ValidateDataAnnotations checks only the top-level properties, so without this a value such as
/// Learner:Trainer:LearningRate=-1 would start a learner.
/// </summary>
public sealed class LearnerOptionsValidator : IValidateOptions<LearnerOptions>
{
    public ValidateOptionsResult Validate(string? name, LearnerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = new List<string>();
        AddErrors(errors, nameof(LearnerOptions.Trainer), options.Trainer);
        AddErrors(errors, nameof(LearnerOptions.Checkpoint), options.Checkpoint);
        AddErrors(errors, nameof(LearnerOptions.Promotion), options.Promotion);
        AddErrors(errors, nameof(LearnerOptions.InitialSpec), options.InitialSpec);
        if (!string.IsNullOrEmpty(options.Trainer.Preset) && StrategyPresets.Find(options.Trainer.Preset) is null)
        {
            errors.Add($"{LearnerOptions.SectionName}:{nameof(LearnerOptions.Trainer)}:{nameof(TrainerOptions.Preset)}: {StrategyPresets.UnknownNameMessage(options.Trainer.Preset)}");
        }
        else if (PresetStrategyConflict(options.Trainer) is { } conflict)
        {
            errors.Add(conflict);
        }

        if (options.Trainer.IsAnalytic)
        {
            AddAnalyticErrors(errors, options);
        }

        if (BootstrapServersError(options.BootstrapServers) is { } bootstrapError)
        {
            errors.Add($"{LearnerOptions.SectionName}:{nameof(LearnerOptions.BootstrapServers)}: {bootstrapError}");
        }

        try
        {
            options.InitialSpec.Validate();
        }
        catch (InvalidDataException exception)
        {
            errors.Add($"{LearnerOptions.SectionName}:{nameof(LearnerOptions.InitialSpec)}: {exception.Message}");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    /// <summary>
    /// Returns why <paramref name="bootstrapServers"/> is not a comma-separated list of host:port entries with ports
    /// from 1 to 65535, or null when it is one or is empty (the required-value check reports an empty list).
    /// </summary>
    public static string? BootstrapServersError(string? bootstrapServers)
    {
        if (string.IsNullOrWhiteSpace(bootstrapServers))
        {
            return null;
        }

        foreach (string entry in bootstrapServers.Split(',', StringSplitOptions.TrimEntries))
        {
            int colon = entry.LastIndexOf(':');
            bool valid = colon > 0
                && int.TryParse(entry.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int port)
                && port is >= 1 and <= 65535;
            if (!valid)
            {
                return $"'{entry}' is not host:port with a port from 1 to 65535, for example 127.0.0.1:9092.";
            }
        }

        return null;
    }

    // The analytic strategy trains only an MLP's head, in closed form. The learner checks the spec of a non-empty store again at start.
    // A preset sets the replay strategy unless configuration sets one (StrategyPresets.ApplyPreset), so after binding a
    // strategy other than the preset's was configured explicitly. The preset's other settings would then train a
    // strategy that is none of the results table's, as Preset=analytic beside the chart's Strategy=DerPlusPlus did.
    private static string? PresetStrategyConflict(TrainerOptions trainer)
    {
        if (string.IsNullOrEmpty(trainer.Preset))
        {
            return null;
        }

        ReplayStrategy presetStrategy = StrategyPresets.Named(trainer.Preset, new TrainerOptions()).Strategy;
        if (trainer.Strategy == presetStrategy)
        {
            return null;
        }

        string section = $"{LearnerOptions.SectionName}:{nameof(LearnerOptions.Trainer)}";
        return $"{section}:{nameof(TrainerOptions.Preset)} '{trainer.Preset}' trains with strategy {presetStrategy}, but "
            + $"{section}:{nameof(TrainerOptions.Strategy)} is {trainer.Strategy}. Remove {section}:{nameof(TrainerOptions.Strategy)} "
            + $"(the Helm value learner.replayStrategy is not rendered while learner.preset is set), or remove the preset. "
            + "--strategy on the command line replaces a preset from appsettings or the environment.";
    }

    private static void AddAnalyticErrors(List<string> errors, LearnerOptions options)
    {
        const string specKey = $"{LearnerOptions.SectionName}:{nameof(LearnerOptions.InitialSpec)}";
        if (ContinualTrainer.AnalyticModelError(options.InitialSpec) is { } modelError)
        {
            errors.Add($"{specKey}:{nameof(ModelSpec.Architecture)}, {specKey}:{nameof(ModelSpec.HiddenSizes)}: {modelError} "
                + $"Use {specKey}:{nameof(ModelSpec.Architecture)}=mlp with {specKey}:{nameof(ModelSpec.HiddenSizes)}:0=1024, the width of the analytic preset, "
                + "or choose another strategy.");
        }

        if (options.Trainer.UsesDistillation)
        {
            errors.Add(FormattableString.Invariant(
                $"{LearnerOptions.SectionName}:{nameof(LearnerOptions.Trainer)}:{nameof(TrainerOptions.DistillationWeight)}: the analytic strategy fits its head in closed form and cannot distill, but the weight is {options.Trainer.DistillationWeight}. Set it to 0."));
        }
    }

    private static void AddErrors(List<string> errors, string section, object value)
    {
        var results = new List<ValidationResult>();
        if (Validator.TryValidateObject(value, new ValidationContext(value), results, validateAllProperties: true))
        {
            return;
        }

        foreach (ValidationResult result in results)
        {
            string members = string.Join(", ", result.MemberNames.Select(member => $"{LearnerOptions.SectionName}:{section}:{member}"));
            errors.Add($"{members}: {result.ErrorMessage}");
        }
    }
}
