using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Hosting;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Management;

/// <summary>Wires the management API into the server: its options, its own listen address, and its routes.</summary>
public static partial class ManagementHosting
{
    // The inference port is open to applications, so this sentence does not say where the management API is served.
    private const string NotServedHereHint = "The management API is not served on this address.";

    /// <summary>Binds <see cref="ManagementOptions"/> and adds the management listen addresses to <paramref name="inferenceUrls"/>.</summary>
    /// <exception cref="InvalidConfigurationException">A management address takes the host and port of an inference address.</exception>
    public static WebApplicationBuilder AddManagement(this WebApplicationBuilder builder, string inferenceUrls)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<ManagementOptions>().BindConfiguration(ManagementOptions.SectionName);
        builder.Services.AddSingleton<GoldenSetUploadGate>();
        string? managementUrls = builder.Configuration[$"{ManagementOptions.SectionName}:{nameof(ManagementOptions.Urls)}"];
        if (!string.IsNullOrWhiteSpace(managementUrls))
        {
            string effective = string.IsNullOrWhiteSpace(inferenceUrls)
                ? builder.WebHost.GetSetting(WebHostDefaults.ServerUrlsKey) ?? ""
                : inferenceUrls;
            if (string.IsNullOrWhiteSpace(effective))
            {
                throw new InvalidOperationException(
                    "Management:Urls is set but the inference listen address is not; set urls (or --urls) as well.");
            }

            ListenAddressClash.ThrowIfAny(effective, managementUrls);
            builder.WebHost.UseUrls(effective + ";" + managementUrls);
        }

        return builder;
    }

    /// <summary>
    /// Maps the management routes when a token is configured. Without one they are absent (404) and event 441 is logged,
    /// a warning unless <paramref name="warnWithoutToken"/> is false, or the start fails when
    /// <see cref="ManagementOptions.RequireToken"/> is set. With Management:Urls set, every
    /// request under the prefix on another port gets 404 with any method. On the port that serves the API, every request
    /// under the prefix without a valid token gets 401 or 403 with any method, before routing's 404 or 405. Call it after
    /// <see cref="HttpHardening.UseJsonRoutingErrors"/>, which writes that 404's body.
    /// </summary>
    /// <exception cref="InvalidConfigurationException">The token is unusable, or required and missing.</exception>
    /// <param name="warnWithoutToken">False for a host that runs without the management API on purpose, such as the demo.</param>
    public static WebApplication MapManagement(this WebApplication app, bool warnWithoutToken = true)
    {
        ArgumentNullException.ThrowIfNull(app);
        ManagementOptions options = app.Services.GetRequiredService<IOptions<ManagementOptions>>().Value;
        ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ManagementApi));
        BearerToken? token = BearerToken.TryLoad(options.TokenFile, options.TokenEnvironmentVariable, "management");
        if (token is null && options.RequireToken)
        {
            throw new InvalidConfigurationException(BearerToken.MissingRequiredMessage(
                "management",
                $"{ManagementOptions.SectionName}:{nameof(ManagementOptions.RequireToken)}",
                $"{ManagementOptions.SectionName}:{nameof(ManagementOptions.TokenFile)}",
                options.TokenEnvironmentVariable,
                "to run without the management API"));
        }

        // The state is logged once the host has started, because a start that other settings stop has no management API either.
        if (token is null)
        {
            LogLevel level = warnWithoutToken ? LogLevel.Warning : LogLevel.Information;
            app.Lifetime.ApplicationStarted.Register(() => LogDisabled(logger, level, options.TokenEnvironmentVariable));
            return app;
        }

        int? port = ManagementPort(options.Urls);
        if (port is int managementPort)
        {
            app.UseManagementPortOnly(managementPort);
        }

        var tokenFilter = new BearerTokenFilter(
            token, "management API", port, outcome => ReliabilityMetrics.ManagementRequests.WithLabels(outcome).Inc(), logger);
        app.UseBearerToken(ManagementApi.Prefix, tokenFilter);
        app.MapManagementApi(tokenFilter);
        string where = port is null ? "the inference port" : "port " + port.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        app.Lifetime.ApplicationStarted.Register(() => LogEnabled(logger, ManagementApi.Prefix, where));
        return app;
    }

    /// <summary>
    /// Returns the sentence that follows "No route matches PATH." in a 404. A management path on a server without a
    /// management token gets the reason and the settings that enable the API. A management path on a port other than
    /// Management:Urls gets a sentence that does not name the management address, a management path where the API is
    /// served gets the list of its routes, and other paths get the inference hint.
    /// </summary>
    public static string DescribeRoutes(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!IsManagementPath(context))
        {
            return HttpHardening.InferenceRoutesHint;
        }

        string[] routes = ManagementRoutes(context);
        if (routes.Length > 0)
        {
            string urls = context.RequestServices.GetRequiredService<IOptions<ManagementOptions>>().Value.Urls;
            return ManagementPort(urls) is int port && context.Connection.LocalPort != port
                ? NotServedHereHint
                : $"The management API has these routes: {string.Join("; ", routes)}. The OpenAPI document "
                    + "GET /openapi/v1.json describes them.";
        }

        string variable = context.RequestServices.GetRequiredService<IOptions<ManagementOptions>>().Value.TokenEnvironmentVariable;
        return $"The management API is off on this server because no token is configured. Set --management-token-file "
            + $"(Management:TokenFile) or the environment variable {variable} to a token of 16 to 4096 characters, and restart the server.";
    }

    // Routing matches the management routes on every port. Its 405 for a method that a route does not accept lists the
    // route's methods in Allow, which reveals the routes to clients of the inference port. So every request under the
    // prefix on another port ends here, whatever its method, with the 404 of a path that no route matches.
    private static void UseManagementPortOnly(this WebApplication app, int managementPort) =>
        app.Use((context, next) =>
        {
            if (!IsManagementPath(context) || context.Connection.LocalPort == managementPort)
            {
                return next(context);
            }

            context.SetEndpoint(null);
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });

    private static bool IsManagementPath(HttpContext context) =>
        context.Request.Path.StartsWithSegments(ManagementApi.Prefix, StringComparison.OrdinalIgnoreCase);

    // Returns each management route as "GET, PUT /manage/v1/golden-set", in the order they were mapped, or none when
    // the management API is off. HEAD is left out because every GET route also accepts HEAD.
    private static string[] ManagementRoutes(HttpContext context) =>
        context.RequestServices.GetRequiredService<EndpointDataSource>().Endpoints
            .OfType<RouteEndpoint>()
            .Where(endpoint => endpoint.RoutePattern.RawText?.StartsWith(ManagementApi.Prefix, StringComparison.Ordinal) == true)
            .GroupBy(endpoint => endpoint.RoutePattern.RawText!, StringComparer.Ordinal)
            .Select(route => string.Join(", ", route
                    .SelectMany(endpoint => endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? [])
                    .Where(method => method != HttpMethods.Head)
                    .Distinct(StringComparer.Ordinal))
                + " " + route.Key)
            .ToArray();

    private static int? ManagementPort(string urls)
    {
        if (string.IsNullOrWhiteSpace(urls))
        {
            return null;
        }

        string first = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[0];
        if (!Uri.TryCreate(first.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out Uri? uri) || uri.Port <= 0)
        {
            throw new InvalidOperationException($"Management:Urls '{urls}' needs an explicit port, e.g. http://127.0.0.1:8081.");
        }

        return uri.Port;
    }

    [LoggerMessage(EventId = 441, Message = "Management API disabled: no token in Management:TokenFile or the environment variable {Variable}")]
    private static partial void LogDisabled(ILogger logger, LogLevel level, string variable);

    [LoggerMessage(EventId = 442, Level = LogLevel.Information, Message = "Management API at {Prefix} on {Listener}; bearer token required")]
    private static partial void LogEnabled(ILogger logger, string prefix, string listener);
}
