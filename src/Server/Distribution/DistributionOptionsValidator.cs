using System.Security.Cryptography.X509Certificates;
using ContinualServe.Learner.Publishing;
using ContinualServe.Server.Hosting;
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

        if (options.MinDownloadBytesPerSecond < 0)
        {
            errors.Add(
                $"{DistributionOptions.SectionName}:{nameof(DistributionOptions.MinDownloadBytesPerSecond)} must be 0 (no minimum) "
                + $"or a positive number of bytes per second, such as {DistributionOptions.DefaultMinDownloadBytesPerSecond} "
                + $"(the default); it is {options.MinDownloadBytesPerSecond}.");
        }

        // Read here so that a missing file or a short token stops the start with the other settings' errors.
        try
        {
            string? token = BearerToken.Read(options.StoreTokenFile, options.StoreTokenEnvironmentVariable, "model store");
            if (token is null && options.RequireStoreToken)
            {
                errors.Add(BearerToken.MissingRequiredMessage(
                    "model store",
                    $"{DistributionOptions.SectionName}:{nameof(DistributionOptions.RequireStoreToken)}",
                    $"{DistributionOptions.SectionName}:{nameof(DistributionOptions.StoreTokenFile)}",
                    options.StoreTokenEnvironmentVariable,
                    "to run with an open store"));
            }
        }
        catch (InvalidConfigurationException exception)
        {
            errors.Add($"{DistributionOptions.SectionName}:{nameof(DistributionOptions.StoreTokenFile)}: {exception.Message}");
        }

        if (!string.IsNullOrWhiteSpace(options.StoreCaFile))
        {
            try
            {
                foreach (X509Certificate2 authority in StoreHttpClient.LoadAuthorities(options.StoreCaFile))
                {
                    authority.Dispose();
                }
            }
            catch (InvalidConfigurationException exception)
            {
                errors.Add($"{DistributionOptions.SectionName}:{nameof(DistributionOptions.StoreCaFile)}: {exception.Message}");
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
