using System.Text.Json.Serialization;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Batching;
using ContinualServe.Server.Inference;
using ContinualServe.Server.Management;
using ContinualServe.Server.StatusPage;
using Microsoft.Extensions.Options;
using Prometheus;

namespace ContinualServe.Server.Hosting;

/// <summary>Builds the ASP.NET Core application that serves inference, health, metrics and the OpenAPI document.</summary>
public static class ServerHost
{
    /// <summary>
    /// Creates the web application. <paramref name="urls"/> are Kestrel listen addresses, e.g. "http://127.0.0.1:8080";
    /// <paramref name="configure"/> adjusts the options after configuration is bound.
    /// </summary>
    /// <param name="configureBuilder">Adds services before the application is built (the role commands add their own).</param>
    /// <param name="warnWithoutManagementToken">
    /// False for a host that runs without the management API on purpose. A start without a token then logs event 441 at
    /// Information instead of Warning.
    /// </param>
    public static WebApplication Build(
        string[] args,
        string urls,
        Action<ServerOptions>? configure = null,
        bool pollStore = true,
        Action<BatchingOptions>? configureBatching = null,
        Action<WebApplicationBuilder>? configureBuilder = null,
        bool warnWithoutManagementToken = true)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(args);

        // The slim builder leaves HTTPS out. With it, an https:// address takes its certificate from Kestrel:Certificates:Default.
        builder.WebHost.UseKestrelHttpsConfiguration();

        // An empty value leaves the listen addresses to configuration (urls, ASPNETCORE_URLS, ASPNETCORE_HTTP_PORTS).
        if (!string.IsNullOrEmpty(urls))
        {
            builder.WebHost.UseUrls(urls);
        }

        builder.Logging.AddSimpleConsole(console =>
        {
            console.SingleLine = true;
            console.TimestampFormat = "HH:mm:ss ";
        });
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.ReportHostFailuresOnce();
        builder.Logging.UseJsonConsoleWhenConfigured(builder.Configuration);
        builder.Services.AddOptions<ServerOptions>()
            .BindConfiguration(ServerOptions.SectionName)
            .Configure(options => configure?.Invoke(options))
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddOptions<BatchingOptions>()
            .BindConfiguration(BatchingOptions.SectionName)
            .Configure(options => configureBatching?.Invoke(options))
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton<InferenceBatcher>();
        builder.AddHttpLimits();
        builder.Services.AddSingleton<LiveModel>();
        builder.Services.AddSingleton<ModelSwapper>();
        if (pollStore)
        {
            builder.Services.AddHostedService<StorePoller>();
        }

        // The OpenAPI schemas follow these options. Under the web defaults they would admit numbers in strings,
        // which the hand-written readers reject. No route binds a JSON body through these options, and the number
        // handling for reading does not change what the server writes, so Strict changes only the schemas.
        builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.NumberHandling = JsonNumberHandling.Strict);
        builder.Services.AddOpenApi();
        builder.Services.AddStatusPage();
        builder.Services.AddHostedService<ServerLifecycleLog>();
        configureBuilder?.Invoke(builder);
        builder.AddCertificateReload();

        // After the role's own listen addresses are set, so that a separate management port is added to them.
        builder.AddManagement(urls);

        WebApplication app = builder.Build();
        // At the start, once the options are validated. Only requests in the moment between the listen and this callback
        // can come before their series.
        app.Lifetime.ApplicationStarted.Register(
            () => ContinualServeMetrics.ExportKnownSeries(app.Services.GetRequiredService<IOptions<ServerOptions>>().Value.ModelName));
        app.UseNoSniffHeader();
        app.UseOversizedBodyClose();
        app.UseJsonRoutingErrors(ManagementHosting.DescribeRoutes, InferenceApi.V1AllowedMethods);
        app.MapInferenceApi();
        app.MapManagement(warnWithoutManagementToken);
        app.MapMetrics("/metrics").WithGetAndHead();
        app.MapOpenApi("/openapi/{documentName}.json").WithGetAndHead();
        app.MapStatusPage();
        app.Lifetime.ApplicationStopped.Register(() => app.Services.GetRequiredService<LiveModel>().Dispose());
        return app;
    }
}
