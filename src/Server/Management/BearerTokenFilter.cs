using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Inference;

namespace ContinualServe.Server.Management;

/// <summary>
/// Admits a management request only with "Authorization: Bearer &lt;token&gt;": 401 without the header (or another
/// scheme), 403 with a wrong token. With a separate management port, requests on other ports get 404.
/// </summary>
internal sealed class BearerTokenFilter(ManagementToken token, int? managementPort) : IEndpointFilter
{
    private const string Scheme = "Bearer ";

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        HttpContext http = context.HttpContext;
        if (managementPort is not null && http.Connection.LocalPort != managementPort)
        {
            return new InferenceError("Management routes are served on the management port only.", null, $"port {managementPort}").ToResult(StatusCodes.Status404NotFound);
        }

        string? header = http.Request.Headers.Authorization;
        if (header is null || !header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            ReliabilityMetrics.ManagementRequests.WithLabels("unauthorized").Inc();
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return new InferenceError("The management API needs a bearer token.", "Authorization", "Bearer <token>").ToResult(StatusCodes.Status401Unauthorized);
        }

        if (!token.Matches(header.AsSpan(Scheme.Length).Trim()))
        {
            ReliabilityMetrics.ManagementRequests.WithLabels("forbidden").Inc();
            return new InferenceError("The bearer token is not valid for the management API.", "Authorization", "the configured management token").ToResult(StatusCodes.Status403Forbidden);
        }

        return await next(context).ConfigureAwait(false);
    }
}
