using ContinualServe.Learner.Publishing;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Distribution;

/// <summary>Reports the cross-field errors of <see cref="DistributionOptions"/> at start, with the keys to fix.</summary>
public sealed class DistributionOptionsValidator : IValidateOptions<DistributionOptions>
{
    public ValidateOptionsResult Validate(string? name, DistributionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        List<string> errors = options.Validate().ToList();
        if (LearnerOptionsValidator.BootstrapServersError(options.BootstrapServers) is { } bootstrapError)
        {
            errors.Add($"{DistributionOptions.SectionName}:{nameof(DistributionOptions.BootstrapServers)}: {bootstrapError}");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
