using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner.Kafka;

/// <summary>
/// Routes a Kafka client's librdkafka log lines and errors to an <see cref="ILogger"/>. Without a handler,
/// librdkafka writes them to stderr in its own format, bypassing the JSON log format. While a broker is down,
/// librdkafka repeats its reports at each reconnect attempt, so after the first 10 lines only every 100th is written
/// (<see cref="RepeatedLogSampler"/>). Log lines and errors share the count.
/// </summary>
public sealed partial class KafkaClientLog(ILogger logger)
{
    private readonly RepeatedLogSampler sampler = new();

    /// <summary>Writes a librdkafka log line, mapping its syslog level to a log level.</summary>
    public void OnLog(IClient client, LogMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (!sampler.Count())
        {
            return;
        }

        // librdkafka logs a refused connection at its error level and retries it, so that level maps to a warning.
        LogLevel level = message.Level switch
        {
            <= SyslogLevel.Critical => LogLevel.Error,
            <= SyslogLevel.Warning => LogLevel.Warning,
            SyslogLevel.Debug => LogLevel.Debug,
            _ => LogLevel.Information,
        };
        LogClientLine(logger, level, message.Name, message.Facility, message.Message);
    }

    /// <summary>Writes a client error: a warning, because librdkafka retries, unless the error is fatal to the client.</summary>
    public void OnError(IClient client, Error error)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (sampler.Count())
        {
            LogClientError(logger, error.IsFatal ? LogLevel.Error : LogLevel.Warning, error.Code, error.Reason, error.IsFatal);
        }
    }

    /// <summary>
    /// Writes, once at start, which extra properties the process's Kafka clients take and where they come from. Only the
    /// names are written, because values such as sasl.password are secret.
    /// </summary>
    public static void LogExtraProperties(ILogger logger, KafkaClientProperties properties)
    {
        ArgumentNullException.ThrowIfNull(properties);
        if (properties.Values.Count > 0)
        {
            string names = string.Join(", ", properties.Values.Keys.Order(StringComparer.Ordinal));
            LogProperties(logger, properties.Source, names);
        }
    }

    [LoggerMessage(EventId = 255, Message = "librdkafka {Client} {Facility}: {Text}")]
    private static partial void LogClientLine(ILogger logger, LogLevel level, string client, string facility, string text);

    [LoggerMessage(EventId = 256, Message = "Kafka client error {Code}: {Reason} (fatal: {Fatal})")]
    private static partial void LogClientError(ILogger logger, LogLevel level, ErrorCode code, string reason, bool fatal);

    [LoggerMessage(EventId = 261, Level = LogLevel.Information, Message = "Kafka clients take extra librdkafka properties from {Source}: {Names}")]
    private static partial void LogProperties(ILogger logger, string source, string names);
}
