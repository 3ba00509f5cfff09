using System.ComponentModel.DataAnnotations;
using ContinualServe.Learner;
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
