using ContinualServe.Server.Inference;

namespace ContinualServe.Server.Management;

/// <summary>
/// Logs every management request that changes state (promote, rollback, unpin, pause, resume, golden set) with its
/// outcome, and every read that ends in an error, such as a stored golden set that cannot be read.
/// </summary>
internal sealed partial class ManagementAuditFilter(ILogger logger) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        object? result = await next(context).ConfigureAwait(false);
        HttpRequest request = context.HttpContext.Request;
        int status = (result as IStatusCodeHttpResult)?.StatusCode ?? context.HttpContext.Response.StatusCode;
        bool isRead = HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method);
        if (!isRead || status >= StatusCodes.Status400BadRequest)
        {
            LogManagementChange(logger, request.Method, request.Path, status, context.HttpContext.Connection.RemoteIpAddress);
        }

        return result;
    }

    // The path contains a version segment that the client chose, so the log repeats only its first characters.
    private static void LogManagementChange(ILogger logger, string method, PathString path, int statusCode, System.Net.IPAddress? client)
    {
        if (logger.IsEnabled(LogLevel.Information))
        {
            string shownPath = ClientText.Truncate(path.ToString());
            LogManagementRequest(logger, method, shownPath, statusCode, client);
        }
    }

    [LoggerMessage(EventId = 440, Level = LogLevel.Information, Message = "Management request {Method} {Path} from {Client} returned {StatusCode}")]
    private static partial void LogManagementRequest(ILogger logger, string method, string path, int statusCode, System.Net.IPAddress? client);
}
