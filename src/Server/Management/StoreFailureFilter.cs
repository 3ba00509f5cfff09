using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Hosting;
using ContinualServe.Server.Inference;

namespace ContinualServe.Server.Management;

/// <summary>
/// Returns 503 with a JSON error, in place of an empty 500, when a management request cannot read or write the model
/// store: a full or read-only volume, missing permissions, or a store directory removed or replaced since the start.
/// It logs the failure with the store directory, a read failure once until a read succeeds or the error changes. A read (GET or HEAD) checks the store directory first, because a
/// removed directory would read as a store without pin, pause marker or golden set, and a replaced one as another store.
/// </summary>
internal sealed partial class StoreFailureFilter(ILogger logger) : IEndpointFilter
{
    // A client that polls a removed store would otherwise log the same read error at every request.
    private readonly RepeatedFailureLog reportedReadFailure = new();

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        HttpRequest request = context.HttpContext.Request;
        bool isRead = HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method);
        ModelStore store = context.HttpContext.RequestServices.GetRequiredService<ModelSwapper>().Store;
        try
        {
            if (isRead)
            {
                store.EnsureRootDirectoryUnchanged();
            }

            object? result = await next(context).ConfigureAwait(false);
            if (isRead)
            {
                reportedReadFailure.Clear();
            }

            return result;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            string directory = store.RootDirectory;
            if (isRead)
            {
                if (reportedReadFailure.IsNew(exception.Message))
                {
                    LogStoreReadFailed(logger, exception, request.Method, request.Path, directory);
                }
            }
            else
            {
                LogStoreWriteFailed(logger, exception, request.Method, request.Path, directory);
            }

            ReliabilityMetrics.ManagementRequests.WithLabels(isRead ? "store_read_failed" : "store_write_failed").Inc();
            string action = isRead ? "Reading" : "Writing";
            var error = new InferenceError($"{action} the model store {directory} failed: {exception.Message}", null, NextStep(exception));
            return error.ToResult(StatusCodes.Status503ServiceUnavailable);
        }
    }

    // Writes never create the store directory again, so a removed or replaced one needs the operator, not a retry.
    private static string NextStep(Exception exception) =>
        exception is StoreDirectoryChangedException or DirectoryNotFoundException
            ? "move the original store directory back, or restart the server to open the directory now at that path, "
                + "then send the request again"
            : "free space on the store's volume, or make it readable and writable, then send the request again";

    [LoggerMessage(EventId = 482, Level = LogLevel.Error, Message = "Management request {Method} {Path} failed because the model store {Directory} could not be written")]
    private static partial void LogStoreWriteFailed(ILogger logger, Exception exception, string method, PathString path, string directory);

    [LoggerMessage(EventId = 412, Level = LogLevel.Error, Message = "Management request {Method} {Path} failed because the model store {Directory} could not be read")]
    private static partial void LogStoreReadFailed(ILogger logger, Exception exception, string method, PathString path, string directory);
}
