using ContinualServe.Model.Serving;
using ContinualServe.Server.Inference;
using ContinualServe.Server.Management;
using Prometheus;

namespace ContinualServe.Server.Hosting;

/// <summary>Builds the ASP.NET Core application that serves inference, health, metrics and the OpenAPI document.</summary>
public static class ServerHost
{
    /// <summary>
    /// Creates the web application. <paramref name="urls"/> are Kestrel listen addresses, e.g. "http://127.0.0.1:8080";
    /// <paramref name="configure"/> adjusts the options after configuration is bound.
    /// </summary>
    public static WebApplication Build(string[] args, string urls, Action<ServerOptions>? configure = null, bool pollStore = true)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(args);
        builder.WebHost.UseUrls(urls);
        builder.AddManagement(urls);
        builder.Logging.AddSimpleConsole(console =>
        {
            console.SingleLine = true;
            console.TimestampFormat = "HH:mm:ss ";
        });
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Services.AddOptions<ServerOptions>()
            .BindConfiguration(ServerOptions.SectionName)
            .Configure(options => configure?.Invoke(options))
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.AddHttpLimits();
        builder.Services.AddSingleton<LiveModel>();
        builder.Services.AddSingleton<ModelSwapper>();
        if (pollStore)
        {
            builder.Services.AddHostedService<StorePoller>();
        }

        builder.Services.AddOpenApi();

        WebApplication app = builder.Build();
        app.MapInferenceApi();
        app.MapManagement();
        app.MapMetrics("/metrics");
        app.MapOpenApi("/openapi/{documentName}.json");
        app.Lifetime.ApplicationStopped.Register(() => app.Services.GetRequiredService<LiveModel>().Dispose());
        return app;
    }
}
