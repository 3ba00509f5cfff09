using System.CommandLine;
using ContinualServe.Learner.Training;
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

    /// <summary>
    /// Exit code of an unrecognized command-line argument or another parse error. It equals
    /// <see cref="InvalidConfigurationExitCode"/>, because both mean the process did not start as configured.
    /// </summary>
    public const int InvalidArgumentExitCode = InvalidConfigurationExitCode;

    /// <summary>Exit code when the learner or a background service (store poller, version subscriber, status sampler) failed and stopped the host.</summary>
    public const int ServiceFailedExitCode = 1;

    /// <summary>What to set when an https:// listen address has no usable certificate.</summary>
    internal const string HttpsCertificateAdvice =
        "Set Kestrel:Certificates:Default:Path to a PEM certificate (with Kestrel:Certificates:Default:KeyPath for its key) "
        + "or a .pfx file (with Kestrel:Certificates:Default:Password), or listen on http://.";

    /// <summary>The options that set the listen addresses of the roles that host the management API.</summary>
    public const string ServerListenOptions = "--urls or --management-urls";

    public static Option<string> Shortcut(string name, string description) => new(name) { Description = description };

    /// <summary>The --management-urls option of the roles that host the management API (key Management:Urls).</summary>
    public static Option<string> ManagementUrlsOption() => Shortcut(
        "--management-urls", "Separate listen address of the management API, e.g. http://127.0.0.1:8082 (Management:Urls); default: the inference address.");

    /// <summary>The --management-token-file option of the roles that host the management API (key Management:TokenFile).</summary>
    public static Option<string> ManagementTokenFileOption() => Shortcut(
        "--management-token-file", "File with the management bearer token (Management:TokenFile); default: the CONTINUALSERVE_MANAGEMENT_TOKEN variable.");

    /// <summary>The --kafka-config option of every role with a Kafka client (key Kafka:ConfigFile).</summary>
    public static Option<string> KafkaConfigOption() => Shortcut(
        "--kafka-config",
        "File of extra librdkafka properties for every Kafka client, one name=value a line, e.g. security.protocol=SASL_SSL (Kafka:ConfigFile).");

    /// <summary>
    /// Builds the configuration arguments of a parse: unmatched tokens (already in key=value form) and one
    /// "--Key=value" pair per key of every named option the user gave. Returns false, after writing the error
    /// to stderr, when an unmatched token is not a configuration argument.
    /// </summary>
    public static bool TryGetConfigurationArguments(
        ParseResult result, IEnumerable<(Option<string> Option, string[] Keys)> shortcuts, out string[] configurationArguments)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(shortcuts);
        configurationArguments = [];
        string[] knownOptions = result.CommandResult.Command.Options.SelectMany(option => option.Aliases.Append(option.Name)).ToArray();
        if (FindInvalidArgument(result.UnmatchedTokens, knownOptions) is { } error)
        {
            Console.Error.WriteLine(error);
            return false;
        }

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

        configurationArguments = [.. arguments];
        return true;
    }

    /// <summary>
    /// Returns an error for the first unmatched token that is not a configuration argument, so that a misspelled
    /// option such as --stor fails instead of being ignored. Configuration arguments contain ':' in the key
    /// (--Server:ModelName=x or --Server:ModelName x); "urls" is the one accepted key without a section. A key without
    /// a value, at the end or before another option, is an error too.
    /// When one of <paramref name="knownOptions"/> is at most two edits away, the error suggests it.
    /// </summary>
    public static string? FindInvalidArgument(IReadOnlyList<string> unmatchedTokens, IReadOnlyCollection<string>? knownOptions = null)
    {
        ArgumentNullException.ThrowIfNull(unmatchedTokens);
        for (int index = 0; index < unmatchedTokens.Count; index++)
        {
            string token = unmatchedTokens[index];
            string key = token.TrimStart('-').Split('=', 2)[0];
            bool isKey = token.StartsWith("--", StringComparison.Ordinal) && (key.Contains(':', StringComparison.Ordinal) || key == "urls");
            if (!isKey)
            {
                string? suggestion = Closest(token.Split('=', 2)[0], knownOptions ?? []);
                string hint = suggestion is null ? "" : $" Did you mean '{suggestion}'?";
                return $"Unrecognized argument '{token}'.{hint} Use the options listed by --help, or configuration keys as --Section:Key=value.";
            }

            if (!token.Contains('=', StringComparison.Ordinal))
            {
                // The value follows as the next token. Without one, .NET would take the next key, or an option that this
                // command adds after the user's tokens, as the value.
                if (index + 1 >= unmatchedTokens.Count || unmatchedTokens[index + 1].StartsWith("--", StringComparison.Ordinal))
                {
                    return $"Missing value for '{token}'. Write it as {token}=value or {token} value.";
                }

                index++;
            }
        }

        return null;
    }

    // The known option with the smallest edit distance to token, if that distance is 1 or 2.
    private static string? Closest(string token, IReadOnlyCollection<string> knownOptions) => Hosting.Spelling.Nearest(token, knownOptions);

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
        return await RunAsync(() => app, cancellation).ConfigureAwait(false);
    }

    /// <summary>
    /// Builds and runs the application, so that invalid settings found while building (options read by a
    /// constructor, an unknown device) get the same summary and exit code as those found at start.
    /// <paramref name="listenOptions"/> names the options that set the listen addresses, for the messages of
    /// listen failures.
    /// </summary>
    public static async Task<int> RunAsync(Func<WebApplication> build, CancellationToken cancellation, string listenOptions = ServerListenOptions)
    {
        ArgumentNullException.ThrowIfNull(build);
        IConfiguration? configuration = null;
        try
        {
            await using WebApplication app = build();
            configuration = app.Configuration;
            Hosting.UnknownSettings.ThrowIfAny(app.Configuration);
            ILogger certificateLogger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(Hosting.HttpsCertificateValidity));
            Hosting.HttpsCertificateValidity.CheckConfiguredCertificates(app.Configuration, certificateLogger, DateTimeOffset.UtcNow);

            // Validating before the start keeps the host from logging the failure with a stack trace first.
            app.Services.GetService<IStartupValidator>()?.Validate();
            // RunAsync disposes the services, so the background services are looked up before it (they are singletons).
            IHostedService[] hostedServices = app.Services.GetServices<IHostedService>().ToArray();
            await app.RunAsync(cancellation).ConfigureAwait(false);
            return FailedServiceExitCode(hostedServices);
        }
        catch (OptionsValidationException exception)
        {
            return await ReportInvalidOptionsAsync(exception.Failures).ConfigureAwait(false);
        }
        catch (AggregateException exception) when (exception.InnerExceptions.All(inner => inner is OptionsValidationException))
        {
            // The startup validator throws one exception per invalid options type, gathered when there are several.
            // Options read by another type's validation can fail twice, so repeated failures are listed once.
            IEnumerable<string> failures = exception.InnerExceptions.Cast<OptionsValidationException>().SelectMany(inner => inner.Failures).Distinct();
            return await ReportInvalidOptionsAsync(failures).ConfigureAwait(false);
        }
        catch (Hosting.InvalidConfigurationException exception)
        {
            return await ReportInvalidConfigurationAsync(exception.Message).ConfigureAwait(false);
        }
        catch (Exception exception) when (ListenFailures.Describe(exception, listenOptions, CertificateAdvice(configuration)) is { } message)
        {
            if (ListenFailures.IsAddressInUse(exception))
            {
                // The configuration may be right, and another process listens on the port.
                await Console.Error.WriteLineAsync("The process did not start: " + message).ConfigureAwait(false);
                return InvalidConfigurationExitCode;
            }

            return await ReportInvalidConfigurationAsync(message).ConfigureAwait(false);
        }
        catch (ArgumentException exception) when (exception.Message.Contains("Device", StringComparison.Ordinal))
        {
            return await ReportInvalidConfigurationAsync(CommandLine.MessageWithoutParameter(exception) + " Pass it with --device.").ConfigureAwait(false);
        }
        catch (Exception exception) when (IsCertificateLoadFailure(exception))
        {
            return await ReportInvalidConfigurationAsync(
                "The HTTPS certificate cannot be loaded: " + CertificateFailureReason(exception) + " " + CertificateAdvice(configuration))
                .ConfigureAwait(false);
        }
        catch (InvalidOperationException exception) when (Hosting.UnknownSettings.DescribeBinderDurationFailure(exception.Message) is { } message)
        {
            return await ReportInvalidConfigurationAsync(message).ConfigureAwait(false);
        }
        catch (InvalidOperationException exception) when (
            exception.Message.Contains("configuration", StringComparison.OrdinalIgnoreCase)
            || exception.Message.Contains("CUDA", StringComparison.Ordinal))
        {
            // ConfigurationBinder reports values it cannot convert (an unknown enum name, text in a number) this way.
            string hint = StrategyHint(exception.Message);
            return await ReportInvalidConfigurationAsync(exception.Message + (hint.Length > 0 ? hint : EnumValuesHint(exception.Message))).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Returns <see cref="HttpsCertificateAdvice"/>, followed by the Kestrel:Endpoints certificate sections that
    /// configuration sets. Such a section replaces the default certificate for its endpoint, so it can be the one that failed.
    /// </summary>
    internal static string CertificateAdvice(IConfiguration? configuration)
    {
        string[] endpointCertificates = configuration is null
            ? []
            : Hosting.HttpsCertificateValidity.EndpointCertificateSections(configuration).Select(certificate => certificate.Path).ToArray();
        if (endpointCertificates.Length == 0)
        {
            return HttpsCertificateAdvice;
        }

        return HttpsCertificateAdvice + " An endpoint with its own certificate uses the same keys under "
            + string.Join(" and ", endpointCertificates) + " instead: check its Path, KeyPath and Password.";
    }

    /// <summary>
    /// Returns advice for a binder message about Learner:Trainer:Strategy, or an empty string for other messages.
    /// That key takes only the loss families, so an experiment name such as best belongs in Learner:Trainer:Preset.
    /// </summary>
    internal static string StrategyHint(string binderMessage)
    {
        ArgumentNullException.ThrowIfNull(binderMessage);
        const string strategyKey = "'Learner:Trainer:Strategy'";
        return binderMessage.Contains(strategyKey, StringComparison.OrdinalIgnoreCase)
            ? $" Learner:Trainer:Strategy takes {string.Join(", ", Enum.GetNames<ReplayStrategy>())}. To use a strategy of the experiment "
                + "(best, derpp, er-ace and others), set Learner:Trainer:Preset instead (Learner__Trainer__Preset in the environment)."
            : "";
    }

    /// <summary>
    /// Returns the names that an enum setting accepts, for a binder message that names the enum's .NET type ("Failed to
    /// convert configuration value 'Reset' at 'Learner:OnTopicMismatch' to type '...TopicMismatchAction'"), or an empty
    /// string for other messages.
    /// </summary>
    internal static string EnumValuesHint(string binderMessage)
    {
        if (Hosting.BinderConversionFailure.Parse(binderMessage) is not { } failure)
        {
            return "";
        }

        Type? type = AppDomain.CurrentDomain.GetAssemblies()
            .Select(assembly => assembly.GetType(failure.TypeName))
            .FirstOrDefault(found => found is not null);
        return type is { IsEnum: true } ? $" It takes {string.Join(", ", Enum.GetNames(type))} (in any case)." : "";
    }

    /// <summary>
    /// Tells whether Kestrel failed to load the certificate of an https:// address: a file that is missing, unreadable or a
    /// directory, protected by another password, a key that does not match the certificate, or a certificate without its
    /// key. Kestrel loads the certificate while it starts, so its frames in the stack tell this apart from the other
    /// files a start reads.
    /// </summary>
    internal static bool IsCertificateLoadFailure(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        string stack = exception.StackTrace ?? "";
        return exception switch
        {
            FileNotFoundException or DirectoryNotFoundException or System.Security.Cryptography.CryptographicException =>
                stack.Contains("Kestrel", StringComparison.Ordinal),
            UnauthorizedAccessException or InvalidOperationException =>
                stack.Contains("Kestrel.Core.Internal.Certificates.CertificateConfigLoader", StringComparison.Ordinal),
            NotSupportedException => stack.Contains("Kestrel.Https.Internal.HttpsConnectionMiddleware", StringComparison.Ordinal),
            _ => false,
        };
    }

    // Kestrel wraps a key that does not match the certificate as "Error getting private key from 'PATH'.", and the
    // inner exception gives the cause.
    private static string CertificateFailureReason(Exception exception) =>
        exception.InnerException is { } inner && exception is InvalidOperationException
            ? exception.Message.TrimEnd('.') + ": " + inner.Message
            : exception.Message;

    /// <summary>
    /// Returns 1 when a background service or the learner ended with an exception. The host then stops as it does on a
    /// stop request (its BackgroundServiceExceptionBehavior is StopHost, and a failed learner stops it too), so without
    /// this check the process would exit with 0, which a supervisor takes for a normal stop.
    /// </summary>
    private static int FailedServiceExitCode(IEnumerable<IHostedService> services)
    {
        ArgumentNullException.ThrowIfNull(services);
        foreach (IHostedService hosted in services)
        {
            if (hosted is Hosting.LearnerHostedService { LearnerFailure: { } failure })
            {
                Console.Error.WriteLine($"The process stopped because the learner failed: {failure.Message}");
                return ServiceFailedExitCode;
            }
        }

        foreach (BackgroundService service in services.OfType<BackgroundService>())
        {
            if (service.ExecuteTask is { IsFaulted: true } task)
            {
                Console.Error.WriteLine($"The process stopped because {service.GetType().Name} failed: {task.Exception?.GetBaseException().Message}");
                return ServiceFailedExitCode;
            }
        }

        return 0;
    }

    /// <summary>Writes <paramref name="message"/> after the invalid-configuration prefix and returns the exit code for it.</summary>
    public static async Task<int> ReportInvalidConfigurationAsync(string message)
    {
        await Console.Error.WriteLineAsync("Invalid configuration; the process did not start: " + message).ConfigureAwait(false);
        return InvalidConfigurationExitCode;
    }

    private static async Task<int> ReportInvalidOptionsAsync(IEnumerable<string> failures)
    {
        await Console.Error.WriteLineAsync("Invalid configuration; the process did not start:").ConfigureAwait(false);
        foreach (string failure in failures)
        {
            await Console.Error.WriteLineAsync("  " + failure).ConfigureAwait(false);
        }

        await Console.Error.WriteLineAsync(
            "Set the values in appsettings.json, as environment variables (Section__Key) or as --Section:Key=value arguments.")
            .ConfigureAwait(false);
        return InvalidConfigurationExitCode;
    }
}
