using System.Text.Json;
using ContinualServe.Server.Hosting;

namespace ContinualServe.Server.StatusPage;

/// <summary>
/// The status page at <c>/ui/</c>: static assets embedded in this assembly (no external scripts or fonts) and
/// the JSON document <c>/ui/api/status</c> the page polls.
/// </summary>
public static class StatusPageEndpoints
{
    private const string ResourcePrefix = "ContinualServe.StatusPage.";
    private const string ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);

    private static readonly Dictionary<string, string> Assets = new(StringComparer.Ordinal)
    {
        [""] = "text/html; charset=utf-8",
        ["status.js"] = "text/javascript; charset=utf-8",
        ["status.css"] = "text/css; charset=utf-8",
    };

    public static IServiceCollection AddStatusPage(this IServiceCollection services)
    {
        services.AddSingleton<StatusHistory>();
        services.AddHostedService(provider => provider.GetRequiredService<StatusHistory>());
        return services;
    }

    public static IEndpointRouteBuilder MapStatusPage(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapGetAndHead("/ui/api/status", (StatusHistory history) => Results.Json(history.Snapshot(), JsonOptions))
            .WithName("GetStatus")
            .WithSummary("Live version, its accuracy matrix, recent traffic and the learner in this process, for the status page.")
            .Produces<StatusSnapshot>();
        foreach ((string path, string contentType) in Assets)
        {
            string resource = ResourcePrefix + (path.Length == 0 ? "index.html" : path);
            byte[] content = ReadResource(resource);
            endpoints.MapGetAndHead("/ui/" + path, (HttpContext context) =>
            {
                // Routing matches /ui and /ui/ alike; the page's relative links need the slash.
                if (path.Length == 0 && !context.Request.Path.Value!.EndsWith('/'))
                {
                    // Kestrel (.NET 10) adds Content-Length: 0 to an empty GET response but not to a HEAD response,
                    // so HEAD sends GET's headers only when the handler sets the length.
                    context.Response.ContentLength = 0;
                    return Results.Redirect(context.Request.PathBase + "/ui/");
                }

                context.Response.Headers.ContentSecurityPolicy = ContentSecurityPolicy;
                context.Response.Headers.CacheControl = "no-cache";
                return Results.Bytes(content, contentType);
            }).ExcludeFromDescription();
        }

        return endpoints;
    }

    private static byte[] ReadResource(string name)
    {
        using Stream stream = typeof(StatusPageEndpoints).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"The status page asset {name} is not embedded in the assembly.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
