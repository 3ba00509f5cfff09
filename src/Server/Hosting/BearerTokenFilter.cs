using System.Diagnostics;
using System.Net;
using ContinualServe.Server.Inference;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Admits a request only with "Authorization: Bearer &lt;token&gt;": 401 without the header (or another scheme), 403
/// with a wrong token. With <paramref name="restrictedPort"/>, requests on other ports get 404 without the port
/// number (the management API's own port). <paramref name="countOutcome"/> receives "unauthorized" or "forbidden" for each rejected request.
/// Rejected requests are logged as warning 520 at most once per <see cref="RejectionLogInterval"/>, with the number
/// rejected since the previous warning, so that a client guessing tokens shows in the log without flooding it.
/// </summary>
/// <param name="token">The token to compare with.</param>
/// <param name="apiName">The API in error messages, for example "management API".</param>
/// <param name="restrictedPort">The only local port that serves the routes, or null for any.</param>
/// <param name="countOutcome">Counts rejected requests by outcome, or null.</param>
/// <param name="logger">Receives the rejection warnings.</param>
internal sealed partial class BearerTokenFilter(
    BearerToken token, string apiName, int? restrictedPort, Action<string>? countOutcome, ILogger logger) : IEndpointFilter
{
    public static readonly TimeSpan RejectionLogInterval = TimeSpan.FromMinutes(1);

    private const string Scheme = "Bearer ";

    private long rejectedSinceWarning;
    private long nextWarningTimestamp;

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next) =>
        Check(context.HttpContext) ?? await next(context).ConfigureAwait(false);

    /// <summary>
    /// Checks the port and the bearer token of a request. Returns the 404, 401 or 403 result that rejects it, or null
    /// to admit it. Middleware calls it for requests that routing would reject with 404 or 405 before any endpoint filter runs.
    /// </summary>
    public IResult? Check(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);

        // The port stays out of the error, because clients of the other ports, such as applications calling inference,
        // should not learn where the API is served.
        if (restrictedPort is not null && http.Connection.LocalPort != restrictedPort)
        {
            return new InferenceError($"The {apiName} is not served on this address.", null, $"the address that serves the {apiName}").ToResult(StatusCodes.Status404NotFound);
        }

        string? header = http.Request.Headers.Authorization;
        if (header is null || !header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            Reject(http, "unauthorized");
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return new InferenceError($"The {apiName} needs a bearer token.", "Authorization", "Bearer <token>").ToResult(StatusCodes.Status401Unauthorized);
        }

        if (!token.Matches(header.AsSpan(Scheme.Length).Trim()))
        {
            Reject(http, "forbidden");
            return new InferenceError($"The bearer token is not valid for the {apiName}.", "Authorization", $"the configured {apiName} token").ToResult(StatusCodes.Status403Forbidden);
        }

        return null;
    }

    // The warning names the client and the route, never the presented header, which may contain a real token of another API.
    // The path is truncated, because its route parameters are the client's text.
    private void Reject(HttpContext http, string outcome)
    {
        countOutcome?.Invoke(outcome);
        Interlocked.Increment(ref rejectedSinceWarning);
        long now = Stopwatch.GetTimestamp();
        long due = Interlocked.Read(ref nextWarningTimestamp);
        if (now < due)
        {
            return;
        }

        // Of the requests that find the warning due at the same time, only the one that moves the deadline logs it.
        long nextDue = now + (long)(RejectionLogInterval.TotalSeconds * Stopwatch.Frequency);
        if (Interlocked.CompareExchange(ref nextWarningTimestamp, nextDue, due) != due)
        {
            return;
        }

        long rejected = Interlocked.Exchange(ref rejectedSinceWarning, 0);
        LogRejected(logger, rejected, apiName, outcome, http.Request.Method, ClientText.Truncate(http.Request.Path.ToString()), http.Connection.RemoteIpAddress);
    }

    [LoggerMessage(EventId = 520, Level = LogLevel.Warning, Message = "The {Api} rejected {Count} request(s) without a valid bearer token since the previous warning. Latest: {Outcome}, {Method} {Path} from {Client}")]
    private static partial void LogRejected(ILogger logger, long count, string api, string outcome, string method, string path, IPAddress? client);
}
