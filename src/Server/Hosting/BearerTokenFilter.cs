using System.Diagnostics;
using System.Net;
using ContinualServe.Server.Inference;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Admits a request only with "Authorization: Bearer &lt;token&gt;": 401 without the header (or another scheme), 403
/// with a wrong token. With <paramref name="restrictedPort"/>, requests on other ports get 404 without the port
/// number (the management API's own port). <paramref name="countOutcome"/> receives "unauthorized" or "forbidden" for each rejected request.
/// Rejected requests are logged as warning 520 with the number rejected since the previous warning, so that a client
/// guessing tokens shows in the log without flooding it. Warnings come at most once per rejection log interval: the
/// rejections held back within an interval are logged when it ends, or earlier at <see cref="Dispose"/>.
/// </summary>
/// <param name="token">The token to compare with.</param>
/// <param name="apiName">The API in error messages, for example "management API".</param>
/// <param name="restrictedPort">The only local port that serves the routes, or null for any.</param>
/// <param name="countOutcome">Counts rejected requests by outcome, or null.</param>
/// <param name="logger">Receives the rejection warnings.</param>
/// <param name="rejectionLogInterval">The shortest time between two warnings, <see cref="RejectionLogInterval"/> unless given.</param>
internal sealed partial class BearerTokenFilter(
    BearerToken token, string apiName, int? restrictedPort, Action<string>? countOutcome, ILogger logger, TimeSpan? rejectionLogInterval = null)
    : IEndpointFilter, IDisposable
{
    public static readonly TimeSpan RejectionLogInterval = TimeSpan.FromMinutes(1);

    private const string Scheme = "Bearer ";

    private readonly TimeSpan logInterval = rejectionLogInterval ?? RejectionLogInterval;
    private readonly Lock gate = new();
    private long rejectedSinceWarning;
    private Rejection latest;
    private long nextWarningTimestamp;
    private Timer? flushTimer;
    private bool disposed;

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

    /// <summary>Logs the rejections held back since the previous warning and stops the timer that logs them.</summary>
    public void Dispose()
    {
        lock (gate)
        {
            disposed = true;
            flushTimer?.Dispose();
            flushTimer = null;
            LogPendingLocked();
        }
    }

    // The warning names the client and the route, never the presented header, which may contain a real token of another API.
    // The path is truncated, because its route parameters are the client's text.
    private void Reject(HttpContext http, string outcome)
    {
        countOutcome?.Invoke(outcome);
        var rejection = new Rejection(outcome, http.Request.Method, ClientText.Truncate(http.Request.Path.ToString()), http.Connection.RemoteIpAddress);
        lock (gate)
        {
            rejectedSinceWarning++;
            latest = rejection;
            long now = Stopwatch.GetTimestamp();
            if (now >= nextWarningTimestamp)
            {
                LogPendingLocked();
                return;
            }

            // The first rejection held back starts the timer that logs the count when the interval ends.
            if (flushTimer is null && !disposed)
            {
                flushTimer = new Timer(_ => FlushPending(), null, Stopwatch.GetElapsedTime(now, nextWarningTimestamp), Timeout.InfiniteTimeSpan);
            }
        }
    }

    private void FlushPending()
    {
        lock (gate)
        {
            flushTimer?.Dispose();
            flushTimer = null;
            LogPendingLocked();
        }
    }

    private void LogPendingLocked()
    {
        if (rejectedSinceWarning == 0)
        {
            return;
        }

        LogRejected(logger, rejectedSinceWarning, apiName, latest.Outcome, latest.Method, latest.Path, latest.Client);
        rejectedSinceWarning = 0;
        nextWarningTimestamp = Stopwatch.GetTimestamp() + (long)(logInterval.TotalSeconds * Stopwatch.Frequency);
    }

    [LoggerMessage(EventId = 520, Level = LogLevel.Warning, Message = "The {Api} rejected {Count} request(s) without a valid bearer token since the previous warning. Latest: {Outcome}, {Method} {Path} from {Client}")]
    private static partial void LogRejected(ILogger logger, long count, string api, string outcome, string method, string path, IPAddress? client);

    private readonly record struct Rejection(string Outcome, string Method, string Path, IPAddress? Client);
}
