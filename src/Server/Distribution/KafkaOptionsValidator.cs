using ContinualServe.Learner.Kafka;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Distribution;

/// <summary>
/// Reads the Kafka properties file and has librdkafka check every property at start, so that a misspelled name or a
/// missing certificate file stops the start with exit code 2 instead of leaving every client unable to connect.
/// </summary>
public sealed class KafkaOptionsValidator : IValidateOptions<KafkaOptions>
{
    public ValidateOptionsResult Validate(string? name, KafkaOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            options.Load().Validate();
            return ValidateOptionsResult.Success;
        }
        catch (InvalidDataException exception)
        {
            return ValidateOptionsResult.Fail($"{KafkaOptions.SectionName}: {exception.Message}");
        }
    }
}
