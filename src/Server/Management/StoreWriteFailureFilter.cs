using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Hosting;
using ContinualServe.Server.Inference;

namespace ContinualServe.Server.Management;

/// <summary>
/// Returns 503 with a JSON error, in place of an empty 500, when a management request cannot write the model store
/// (a full or read-only volume, missing permissions, or a store directory removed or replaced since the start), and
/// logs the failure with the store directory. GET requests write nothing, so their errors pass through.
/// </summary>
internal sealed partial class StoreWriteFailureFilter(ILogger logger) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        try
        {
            return await next(context).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException
            && !HttpMethods.IsGet(context.HttpContext.Request.Method))
        {
            HttpRequest request = context.HttpContext.Request;
            string store = context.HttpContext.RequestServices.GetRequiredService<ModelSwapper>().Store.RootDirectory;
            LogStoreWriteFailed(logger, exception, request.Method, request.Path, store);
            ReliabilityMetrics.ManagementRequests.WithLabels("store_write_failed").Inc();
            var error = new InferenceError($"Writing the model store {store} failed: {exception.Message}", null, NextStep(exception));
            return error.ToResult(StatusCodes.Status503ServiceUnavailable);
        }
    }

    // Writes never create the store directory again, so a removed or replaced one needs the operator, not a retry.
    private static string NextStep(Exception exception) =>
        exception is StoreDirectoryChangedException or DirectoryNotFoundException
            ? "move the original store directory back, or restart the server to open the directory now at that path, "
                + "then send the request again"
            : "free space on the store's volume, or make it writable, then send the request again";

    [LoggerMessage(EventId = 482, Level = LogLevel.Error, Message = "Management request {Method} {Path} failed because the model store {Directory} could not be written")]
    private static partial void LogStoreWriteFailed(ILogger logger, Exception exception, string method, PathString path, string directory);
}
