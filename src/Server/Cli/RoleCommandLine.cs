using System.CommandLine;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Cli;

/// <summary>
/// Shared plumbing of the deployable roles (serve, learn, all). Their settings come from standard .NET
/// configuration, lowest precedence first: appsettings.json, appsettings.{Environment}.json, environment
/// variables (Server__ModelName), configuration arguments (--Server:ModelName=x), and last the named options
/// of each command, which are shortcuts for configuration keys.
/// </summary>
internal static class RoleCommandLine
{
    /// <summary>Exit code of a start that failed on invalid configuration.</summary>
    public const int InvalidConfigurationExitCode = 2;

    public static Option<string> Shortcut(string name, string description) => new(name) { Description = description };

    /// <summary>
    /// Returns the configuration arguments of a parse: unmatched tokens (already in key=value form) and
    /// one "--Key=value" pair per key of every named option the user gave.
    /// </summary>
    public static string[] ConfigurationArguments(ParseResult result, IEnumerable<(Option<string> Option, string[] Keys)> shortcuts)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(shortcuts);
        var arguments = new List<string>(result.UnmatchedTokens);
        foreach ((Option<string> option, string[] keys) in shortcuts)
        {
            string? value = result.GetResult(option) is null ? null : result.GetValue(option);
            if (value is null)
            {
                continue;
            }

            arguments.AddRange(keys.Select(key => "--" + key + "=" + value));
        }

        return [.. arguments];
    }

    /// <summary>Sets the listen address to <paramref name="fallback"/> unless configuration names one.</summary>
    public static void UseDefaultUrls(WebApplicationBuilder builder, string fallback)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ConfigurationManager configuration = builder.Configuration;
        bool configured = !string.IsNullOrEmpty(configuration["urls"])
            || !string.IsNullOrEmpty(configuration["http_ports"])
            || !string.IsNullOrEmpty(configuration["https_ports"]);
        if (!configured)
        {
            builder.WebHost.UseUrls(fallback);
        }
    }

    /// <summary>Runs <paramref name="app"/> until shutdown; invalid settings end the start with a readable list of errors.</summary>
    public static async Task<int> RunAsync(WebApplication app, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(app);
        try
        {
            await app.RunAsync(cancellation).ConfigureAwait(false);
            return 0;
        }
        catch (OptionsValidationException exception)
        {
            await Console.Error.WriteLineAsync("Invalid configuration; the process did not start:").ConfigureAwait(false);
            foreach (string failure in exception.Failures)
            {
                await Console.Error.WriteLineAsync("  " + failure).ConfigureAwait(false);
            }

            await Console.Error.WriteLineAsync(
                "Set the values in appsettings.json, as environment variables (Section__Key) or as --Section:Key=value arguments.")
                .ConfigureAwait(false);
            return InvalidConfigurationExitCode;
        }
        catch (InvalidOperationException exception) when (exception.Message.Contains("configuration", StringComparison.OrdinalIgnoreCase))
        {
            // ConfigurationBinder reports values it cannot convert (an unknown enum name, text in a number) this way.
            await Console.Error.WriteLineAsync("Invalid configuration; the process did not start: " + exception.Message).ConfigureAwait(false);
            return InvalidConfigurationExitCode;
        }
    }
}
