using System.Globalization;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;
using ContinualServe.Server.Hosting;
using ContinualServe.Server.Inference;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Distribution;

/// <summary>
/// Read-only HTTP access to a model store, served by the learner so that server replicas can download
/// announced versions. Only GET and HEAD routes exist, and only the three files of a version can be read. With a store token
/// (Distribution:StoreTokenFile or the CONTINUALSERVE_STORE_TOKEN variable) every route needs it as a bearer token.
/// </summary>
public static partial class ModelStoreApi
{
    public const string RoutePrefix = "/store/v1";

    private static readonly Dictionary<string, string> ContentTypes = new(StringComparer.Ordinal)
    {
        [ModelStore.ManifestFileName] = "application/json",
        [ModelStore.SpecFileName] = "application/json",
        [ModelStore.WeightsFileName] = "application/octet-stream",
    };

    /// <summary>
    /// Maps GET and HEAD on /store/v1/versions and /store/v1/versions/{version}/{file} over <paramref name="store"/>, behind the
    /// store token of <see cref="DistributionOptions"/> when one is configured. Without one the routes are open and a
    /// warning is logged. With one, every request under /store/v1 without a valid token gets 401 or 403 with any method,
    /// before routing's 404 or 405.
    /// </summary>
    /// <exception cref="InvalidConfigurationException">The token file cannot be read or is blank, or the token is unusable.</exception>
    public static WebApplication MapModelStoreApi(this WebApplication app, Func<ModelStore> store)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(store);
        RouteGroupBuilder group = app.MapGroup(RoutePrefix).WithTags("Model store (read-only)");
        DistributionOptions options = app.Services.GetRequiredService<IOptions<DistributionOptions>>().Value;
        ILogger logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ModelStoreApi));
        BearerToken? token = BearerToken.TryLoad(options.StoreTokenFile, options.StoreTokenEnvironmentVariable, "model store");
        if (token is null)
        {
            LogStoreOpen(logger, options.StoreTokenEnvironmentVariable);
        }
        else
        {
            // The middleware and the routes share one filter, so that rejections keep one rate-limited warning.
            var tokenFilter = new BearerTokenFilter(token, "model store API", restrictedPort: null, countOutcome: null, logger);
            app.UseBearerToken(RoutePrefix, tokenFilter);
            group.AddEndpointFilter(tokenFilter)
                .WithStoreBearerSecurity()
                .ProducesErrors(StatusCodes.Status401Unauthorized, StatusCodes.Status403Forbidden);
            LogStoreGuarded(logger, RoutePrefix);
        }

        group.AddEndpointFilter(new StoreReadFailureFilter(store, logger));
        group.MapGetAndHead("/versions", () => Results.Json(new { versions = store().ListVersionNumbers() }))
            .WithName("ListStoreVersions")
            .WithSummary("Lists the version numbers in the learner's model store, oldest first.")
            .Produces<StoreVersionListResponse>()
            .ProducesErrors(StatusCodes.Status503ServiceUnavailable);
        group.MapGetAndHead("/versions/{version}/{file}", (string version, string file) => ReadFile(store(), version, file))
            .WithName("GetStoreFile")
            .WithSummary("Downloads one file of a version: manifest.json, spec.json or weights.bin.")
            .WithDescription(
                "manifest.json and spec.json are application/json, weights.bin is application/octet-stream. "
                + "404 for another file name, or for a version without the file, for example one that retention removed.")
            .ProducesFile("application/json", "application/octet-stream")
            .ProducesErrors(StatusCodes.Status400BadRequest, StatusCodes.Status404NotFound, StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    [LoggerMessage(EventId = 413, Level = LogLevel.Error, Message = "The model store API could not read {Directory}, so its requests get 503 until it can: {Reason}")]
    private static partial void LogStoreUnreadable(ILogger logger, Exception exception, string directory, string reason);

    [LoggerMessage(EventId = 480, Level = LogLevel.Warning, Message = "The model store API is open to every client that reaches this port: no token in Distribution:StoreTokenFile or the environment variable {Variable}")]
    private static partial void LogStoreOpen(ILogger logger, string variable);

    [LoggerMessage(EventId = 481, Level = LogLevel.Information, Message = "Model store API at {Prefix} requires a bearer token")]
    private static partial void LogStoreGuarded(ILogger logger, string prefix);

    /// <summary>Relative URL of one file of a version, e.g. "store/v1/versions/7/weights.bin".</summary>
    public static string FilePath(long version, string file) =>
        string.Create(CultureInfo.InvariantCulture, $"{RoutePrefix.TrimStart('/')}/versions/{version}/{file}");

    /// <summary>
    /// Returns 503 with a JSON error, in place of an empty 500 or the files of another directory, when the store
    /// directory was removed or replaced since the start, or cannot be read. Error 413 is logged once per distinct failure.
    /// </summary>
    private sealed class StoreReadFailureFilter(Func<ModelStore> store, ILogger logger) : IEndpointFilter
    {
        private readonly RepeatedFailureLog reported = new();

        public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
        {
            ModelStore current = store();
            try
            {
                current.EnsureRootDirectoryUnchanged();
                object? result = await next(context).ConfigureAwait(false);
                reported.Clear();
                return result;
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
            {
                if (reported.IsNew(exception.Message))
                {
                    LogStoreUnreadable(logger, exception, current.RootDirectory, exception.Message);
                }

                return new InferenceError(
                        $"Reading the model store {current.RootDirectory} failed: {exception.Message}",
                        null,
                        "the store directory that the learner opened at start; the learner's log (error 413) names the failure")
                    .ToResult(StatusCodes.Status503ServiceUnavailable);
            }
        }
    }

    private static IResult ReadFile(ModelStore store, string versionSegment, string file)
    {
        if (!VersionSegment.TryParse(versionSegment, out long version, out InferenceError? versionError))
        {
            return versionError.ToResult(StatusCodes.Status400BadRequest);
        }

        if (!ContentTypes.TryGetValue(file, out string? contentType))
        {
            return Results.Json(
                new { error = $"File '{ClientText.Truncate(file)}' is not served.", expected = string.Join(", ", ContentTypes.Keys) },
                statusCode: StatusCodes.Status404NotFound);
        }

        // The file is opened before the response starts. On Linux an open file stays readable after retention deletes its
        // name, so a version removed mid-download still completes. A version removed before the open gets a 404.
        FileStream stream;
        try
        {
            stream = new FileStream(
                Path.Combine(store.VersionDirectory(version), file), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException)
        {
            return Results.Json(new { error = $"Version {version} has no {file} in the store; it may have been removed by retention." },
                statusCode: StatusCodes.Status404NotFound);
        }

        return Results.File(stream, contentType);
    }
}
