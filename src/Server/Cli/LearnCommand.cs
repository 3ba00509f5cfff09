using ContinualServe.Server.Hosting;
using System.CommandLine;
using ContinualServe.Learner;
using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Inference;
using ContinualServe.Server.Management;
using Prometheus;

namespace ContinualServe.Server.Cli;

/// <summary>
/// <c>continualserve learn</c>: the learner, plus a small HTTP surface with health routes, the learner's state,
/// metrics and its model store served read-only for the replicas.
/// </summary>
internal static class LearnCommand
{
    public const string DefaultUrls = "http://127.0.0.1:8081";

    /// <summary>
    /// The learner's state on this port. A serve process on the learner's volume runs no learner, so its
    /// GET /manage/v1/learning returns no learner state. The route needs no token, as /metrics needs none, because it
    /// returns flags and counts of the kind /metrics exports (readiness, examples, rejections, lag), no weights or data.
    /// </summary>
    public const string LearnerStatusPath = "/learner/v1/status";

    // Operators send inference or management requests to the learner's port by mistake, so its 404 names the roles that serve them.
    private const string LearnerRoutesHint =
        "This is the learner's port (continualserve learn). It serves only /v2/health/live, /v2/health/ready, "
        + LearnerStatusPath + ", /metrics, /openapi/v1.json and the model store under /store/v1. Send inference and "
        + "management requests to continualserve serve or all (http://127.0.0.1:8080 by default).";

    public static Command Create()
    {
        var shortcuts = new LearnerShortcuts();
        Option<string> urls = RoleCommandLine.Shortcut(
            "--urls",
            "Listen addresses of health, metrics and the store (urls), http:// or https:// "
                + "(HTTPS needs Kestrel:Certificates:Default:Path); default " + DefaultUrls + ".");
        var command = new Command(
            "learn",
            "Consume labeled examples, train with replay, publish versions to the model store, announce them on the version topic, "
            + "and serve the store read-only over HTTP.")
        {
            urls,
        };
        shortcuts.AddTo(command);
        command.TreatUnmatchedTokensAsErrors = false;
        command.SetAction(async (result, cancellation) =>
        {
            if (!RoleCommandLine.TryGetConfigurationArguments(
                result, [(urls, ["urls"]), .. shortcuts.Keys(includeServer: false)], out string[] parsed))
            {
                return RoleCommandLine.InvalidArgumentExitCode;
            }

            if (!StrategyPresets.TryExpand(parsed, out string[] arguments, out string? strategyError))
            {
                return await RoleCommandLine.ReportInvalidConfigurationAsync(strategyError).ConfigureAwait(false);
            }

            return await RoleCommandLine.RunAsync(() => Build(arguments), cancellation, "--urls").ConfigureAwait(false);
        });
        return command;
    }

    internal static WebApplication Build(string[] arguments)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(arguments);
        builder.WebHost.UseKestrelHttpsConfiguration();
        RoleCommandLine.UseDefaultUrls(builder, DefaultUrls);
        builder.Logging.AddSimpleConsole(console =>
        {
            console.SingleLine = true;
            console.TimestampFormat = "HH:mm:ss ";
        });
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.ReportHostFailuresOnce();
        builder.Logging.UseJsonConsoleWhenConfigured(builder.Configuration);
        builder.Services.AddLearnerRole();
        builder.Services.AddOpenApi();

        // Replicas and anything else on the cluster network reach this port, so it gets the inference port's Kestrel limits.
        builder.AddHttpLimits();
        builder.AddCertificateReload();

        WebApplication app = builder.Build();
        ContinualServeMetrics.ExportKnownSeries(model: null);
        app.UseNoSniffHeader();
        app.UseJsonRoutingErrors(_ => LearnerRoutesHint);
        MapHealthRoutes(app);
        app.MapGetAndHead(LearnerStatusPath, (ContinualLearner learner) => Results.Json(LearnerState.Capture(learner)))
            .WithName("GetLearnerStatus")
            .WithTags("Learner")
            .WithSummary("Returns the state of the learner: running, ready, paused, faults, examples trained and consumer lag.")
            .Produces<LearnerState>();
        app.MapMetrics("/metrics").WithGetAndHead();
        app.MapModelStoreApi(() => app.Services.GetRequiredService<ContinualLearner>().Store);
        app.MapOpenApi("/openapi/{documentName}.json").WithGetAndHead();
        return app;
    }

    // InferenceApi maps the same two routes for the serve and all roles. The operation names and response types
    // match, so that a client generated from either document calls them on both ports.
    private static void MapHealthRoutes(WebApplication app)
    {
        RouteGroupBuilder health = app.MapGroup("/v2/health").WithTags("Health (Open Inference Protocol v2)");
        health.MapGetAndHead("/live", () => Results.Json(new { live = true }))
            .WithName("GetLive")
            .WithSummary("Liveness: 200 while the process serves HTTP.")
            .Produces<LiveResponse>();
        health.MapGetAndHead("/ready", (ContinualLearner learner) => learner.Status.IsRunning
                ? Results.Json(new { ready = true })
                : Results.Json(new { ready = false }, statusCode: StatusCodes.Status503ServiceUnavailable))
            .WithName("GetReady")
            .WithSummary("Readiness: 200 while the learner thread runs, also while Kafka is unreachable, and 503 before it starts or after it stops.")
            .Produces<ReadyResponse>()
            .Produces<ReadyResponse>(StatusCodes.Status503ServiceUnavailable);
    }
}
