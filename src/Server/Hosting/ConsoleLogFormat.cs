using Microsoft.Extensions.Logging.Console;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Switches console logs to one JSON object per line (timestamp, event id, category, message, and every
/// template value as a field) when configuration key <c>Logging:Format</c> or the environment variable
/// <c>CONTINUALSERVE_LOG_FORMAT</c> is <c>json</c>; <c>simple</c> or nothing keeps the single-line text format.
/// </summary>
public static class ConsoleLogFormat
{
    public const string ConfigurationKey = "Logging:Format";
    public const string EnvironmentVariable = "CONTINUALSERVE_LOG_FORMAT";

    /// <summary>
    /// Keeps the generic host's own error logs off the console, because they only repeated start failures as stack
    /// traces. The role command reports a known start failure (a port in use, invalid settings) as one line with exit
    /// code 2 and lets an unknown one end the process with its stack trace. A background service that fails after the
    /// start is still logged, because the host reports it at Critical level with the exception.
    /// </summary>
    public static ILoggingBuilder ReportHostFailuresOnce(this ILoggingBuilder logging)
    {
        ArgumentNullException.ThrowIfNull(logging);
        return logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
    }

    public static ILoggingBuilder UseJsonConsoleWhenConfigured(this ILoggingBuilder logging, IConfiguration? configuration = null)
    {
        ArgumentNullException.ThrowIfNull(logging);
        string format = configuration?[ConfigurationKey] ?? Environment.GetEnvironmentVariable(EnvironmentVariable) ?? "simple";
        if (string.Equals(format, "simple", StringComparison.OrdinalIgnoreCase))
        {
            return logging;
        }

        if (!string.Equals(format, "json", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidConfigurationException($"Unknown log format '{format}' in {ConfigurationKey} or {EnvironmentVariable}; expected simple or json.");
        }

        logging.ClearProviders();
        logging.AddJsonConsole(json =>
        {
            json.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            json.UseUtcTimestamp = true;
            json.IncludeScopes = true;
        });
        logging.Services.Configure<ConsoleLoggerOptions>(console => console.FormatterName = ConsoleFormatterNames.Json);
        return logging;
    }
}
