using ContinualServe.Server.Inference;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Admits a request only with "Authorization: Bearer &lt;token&gt;": 401 without the header (or another scheme), 403
/// with a wrong token. With <paramref name="restrictedPort"/>, requests on other ports get 404 (the management API's
/// own port). <paramref name="countOutcome"/> receives "unauthorized" or "forbidden" for each rejected request.
/// </summary>
/// <param name="token">The token to compare with.</param>
/// <param name="apiName">The API in error messages, for example "management API".</param>
/// <param name="restrictedPort">The only local port that serves the routes, or null for any.</param>
/// <param name="countOutcome">Counts rejected requests by outcome, or null.</param>
internal sealed class BearerTokenFilter(BearerToken token, string apiName, int? restrictedPort, Action<string>? countOutcome) : IEndpointFilter
{
    private const string Scheme = "Bearer ";

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        HttpContext http = context.HttpContext;
        if (restrictedPort is not null && http.Connection.LocalPort != restrictedPort)
        {
            return new InferenceError($"The {apiName} is served on port {restrictedPort} only.", null, $"port {restrictedPort}").ToResult(StatusCodes.Status404NotFound);
        }

        string? header = http.Request.Headers.Authorization;
        if (header is null || !header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            countOutcome?.Invoke("unauthorized");
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return new InferenceError($"The {apiName} needs a bearer token.", "Authorization", "Bearer <token>").ToResult(StatusCodes.Status401Unauthorized);
        }

        if (!token.Matches(header.AsSpan(Scheme.Length).Trim()))
        {
            countOutcome?.Invoke("forbidden");
            return new InferenceError($"The bearer token is not valid for the {apiName}.", "Authorization", $"the configured {apiName} token").ToResult(StatusCodes.Status403Forbidden);
        }

        return await next(context).ConfigureAwait(false);
    }
}
