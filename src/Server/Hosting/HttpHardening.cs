using ContinualServe.Server.Inference;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Applies <see cref="HttpLimitsOptions"/> and the request body limit to Kestrel, gives routing's empty 404 and
/// 405 responses a JSON error body, and maps routes that accept HEAD as well as GET.
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
    /// Sends <c>X-Content-Type-Options: nosniff</c> with every response, so that a browser never runs a JSON error
    /// body, which can repeat a request's field names, as HTML or script.
    /// </summary>
    public static WebApplication UseNoSniffHeader(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.Use((context, next) =>
        {
            context.Response.Headers.XContentTypeOptions = "nosniff";
            return next(context);
        });
        return app;
    }

    /// <summary>
    /// Maps <paramref name="handler"/> to GET and HEAD on <paramref name="pattern"/>, because load balancers and health
    /// probes send HEAD. Kestrel discards what a handler writes to a HEAD response's body, so HEAD gets the status
    /// code and headers of GET without the body (and without Transfer-Encoding, which only frames a body).
    /// The OpenAPI document lists the HEAD operation without response bodies.
    /// </summary>
    public static RouteHandlerBuilder MapGetAndHead(this IEndpointRouteBuilder routes, string pattern, Delegate handler)
    {
        ArgumentNullException.ThrowIfNull(routes);
        return routes.MapMethods(pattern, [HttpMethods.Get, HttpMethods.Head], handler)
            .AddOpenApiOperationTransformer((operation, context, cancellationToken) =>
            {
                if (HttpMethods.IsHead(context.Description.HttpMethod ?? string.Empty))
                {
                    DescribeHead(operation);
                }

                return Task.CompletedTask;
            });
    }

    /// <summary>
    /// Makes the GET endpoint of <paramref name="builder"/> accept HEAD as well, for routes that a library maps with
    /// GET only, such as <c>/metrics</c> and <c>/openapi/{documentName}.json</c>. Routing reads the last method
    /// metadata of an endpoint, so this replaces the library's GET-only list.
    /// </summary>
    public static TBuilder WithGetAndHead<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.WithMetadata(new HttpMethodMetadata([HttpMethods.Get, HttpMethods.Head]));
    }

    // Both operations come from one endpoint and share its name, but OpenAPI requires each operationId to be unique,
    // so the HEAD operation of GetLive becomes HeadLive.
    private static void DescribeHead(OpenApiOperation operation)
    {
        if (operation.OperationId is string id)
        {
            operation.OperationId = "Head" + (id.StartsWith("Get", StringComparison.Ordinal) ? id[3..] : id);
        }

        operation.Description = "Returns the status code and headers of GET, without a body.";
        if (operation.Responses is null)
        {
            return;
        }

        foreach (IOpenApiResponse response in operation.Responses.Values)
        {
            if (response is OpenApiResponse headResponse)
            {
                headResponse.Content = null;
            }
        }
    }

    /// <summary>The sentence after "No route matches PATH." in a 404 of the <c>serve</c> and <c>all</c> roles.</summary>
    public const string InferenceRoutesHint = "The inference API is under /v2 (GET /v2 describes the server).";

    /// <summary>
    /// Writes a JSON error into the empty responses that routing sends: <c>{"error", "field", "expected"}</c> for a
    /// 405 (a path that exists, but not for the request's method; <c>expected</c> repeats the <c>Allow</c> header),
    /// and <c>{"error"}</c> for a 404 of a path that no route matches. <paramref name="describeRoutes"/> returns the
    /// sentence after "No route matches PATH." for a request, and <see cref="InferenceRoutesHint"/> is the default.
    /// <paramref name="allowedMethods"/> returns the Allow header for paths whose methods routing lists wrongly, or
    /// null for others. On such a path, a method that routing rejects gets 405 with that header, not a 404.
    /// </summary>
    /// <remarks>
    /// A 431 for headers over <see cref="HttpLimitsOptions.MaxRequestHeadersTotalBytes"/> keeps its empty body,
    /// because Kestrel rejects such a request while parsing its headers and sends the 431 before any middleware runs.
    /// </remarks>
    public static WebApplication UseJsonRoutingErrors(
        this WebApplication app, Func<HttpContext, string>? describeRoutes = null, Func<PathString, string?>? allowedMethods = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        Func<HttpContext, string> describe = describeRoutes ?? (_ => InferenceRoutesHint);
        app.UseStatusCodePages(statusCodeContext => WriteRoutingErrorAsync(statusCodeContext, describe, allowedMethods));
        return app;
    }

    // Routing's 405 endpoint sets the Allow header, and routing's 404 has no endpoint, so a handler's 404, such as the
    // one for an unknown model name, keeps its status.
    private static void CorrectAllowedMethods(HttpContext context, Func<PathString, string?>? allowedMethods)
    {
        int status = context.Response.StatusCode;
        bool fromRouting = status == StatusCodes.Status405MethodNotAllowed
            ? context.Response.Headers.Allow.Count > 0
            : status == StatusCodes.Status404NotFound && context.GetEndpoint() is null;
        if (!fromRouting || allowedMethods?.Invoke(context.Request.Path) is not string allowed)
        {
            return;
        }

        context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
        context.Response.Headers.Allow = allowed;
    }

    private static async Task WriteRoutingErrorAsync(
        StatusCodeContext statusCodeContext, Func<HttpContext, string> describeRoutes, Func<PathString, string?>? allowedMethods)
    {
        HttpContext context = statusCodeContext.HttpContext;
        CorrectAllowedMethods(context, allowedMethods);
        string path = ClientText.Truncate(context.Request.Path.ToString());
        InferenceError error;
        if (context.Response.StatusCode == StatusCodes.Status405MethodNotAllowed)
        {
            string allowed = context.Response.Headers.Allow.ToString();
            error = new InferenceError($"Method {ClientText.Truncate(context.Request.Method)} is not allowed on {path}. Use {allowed}.", "method", allowed);
        }
        else if (context.Response.StatusCode == StatusCodes.Status404NotFound && context.GetEndpoint() is null)
        {
            error = new InferenceError($"No route matches {path}. {describeRoutes(context)}", null, null);
        }
        else
        {
            return;
        }

        // A HEAD response gets the Content-Type of the GET response, but no body.
        if (HttpMethods.IsHead(context.Request.Method))
        {
            context.Response.ContentType = InferenceError.ContentType;
            return;
        }

        await error.WriteAsync(context, context.Response.StatusCode).ConfigureAwait(false);
    }
}
