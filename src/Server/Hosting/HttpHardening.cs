using ContinualServe.Server.Inference;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Applies <see cref="HttpLimitsOptions"/> and the request body limit to Kestrel, and gives 405 responses a JSON
/// error body.
/// </summary>
public static class HttpHardening
{
    public static WebApplicationBuilder AddHttpLimits(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<HttpLimitsOptions>()
            .BindConfiguration(HttpLimitsOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddOptions<KestrelServerOptions>()
            .Configure<IOptions<HttpLimitsOptions>, IOptions<ServerOptions>>((kestrel, limits, server) =>
            {
                HttpLimitsOptions value = limits.Value;
                kestrel.AddServerHeader = false;
                kestrel.Limits.MaxRequestBodySize = server.Value.MaxRequestBodyBytes;
                kestrel.Limits.RequestHeadersTimeout = value.RequestHeadersTimeout;
                kestrel.Limits.KeepAliveTimeout = value.KeepAliveTimeout;
                kestrel.Limits.MaxRequestHeadersTotalSize = value.MaxRequestHeadersTotalBytes;
                kestrel.Limits.MaxConcurrentConnections = value.MaxConcurrentConnections;
                kestrel.Limits.MaxConcurrentUpgradedConnections = 0;
                kestrel.Limits.MinRequestBodyDataRate = new MinDataRate(value.MinRequestBodyBytesPerSecond, value.MinBodyRateGracePeriod);
            });
        return builder;
    }

    /// <summary>
    /// Writes <c>{"error", "field", "expected"}</c> into the empty 405 that routing sends for a path that exists
    /// but not for the request's method; <c>expected</c> repeats the <c>Allow</c> header.
    /// </summary>
    /// <remarks>
    /// A 431 for headers over <see cref="HttpLimitsOptions.MaxRequestHeadersTotalBytes"/> keeps its empty body,
    /// because Kestrel rejects such a request while parsing its headers and sends the 431 before any middleware runs.
    /// </remarks>
    public static WebApplication UseJsonMethodNotAllowed(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseStatusCodePages(WriteMethodNotAllowedAsync);
        return app;
    }

    private static async Task WriteMethodNotAllowedAsync(StatusCodeContext statusCodeContext)
    {
        HttpContext context = statusCodeContext.HttpContext;
        if (context.Response.StatusCode != StatusCodes.Status405MethodNotAllowed || HttpMethods.IsHead(context.Request.Method))
        {
            return;
        }

        string allowed = context.Response.Headers.Allow.ToString();
        var error = new InferenceError($"Method {context.Request.Method} is not allowed on {context.Request.Path}. Use {allowed}.", "method", allowed);
        await context.Response.WriteAsJsonAsync(error, context.RequestAborted).ConfigureAwait(false);
    }
}
