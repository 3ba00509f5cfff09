using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Batching;
using ContinualServe.Server.Hosting;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Inference;

/// <summary>
/// KServe's V1 protocol shortcut: <c>GET /v1/models/{name}</c> for readiness and <c>POST /v1/models/{name}:predict</c>
/// with <c>{"instances": [...]}</c>. Predictions go through the same batcher, metrics and error bodies as the v2 routes.
/// </summary>
public static partial class InferenceApi
{
    private const string PredictSuffix = ":predict";

    private static void MapV1(IEndpointRouteBuilder routes)
    {
        RouteGroupBuilder v1 = routes.MapGroup("/v1").WithTags("Inference (V1 predict shortcut)");
        v1.MapGetAndHead("/models/{name}", GetV1Model)
            .WithName("GetV1ModelStatus")
            .WithSummary("Model readiness: 200 once a version is loaded, 503 before, 404 for another model name.")
            .Produces<ModelReadyResponse>()
            .Produces<ModelReadyResponse>(StatusCodes.Status503ServiceUnavailable)
            .ProducesErrors(StatusCodes.Status404NotFound);
        v1.MapPost("/models/{name}:predict", PredictAsync)
            .WithName("Predict")
            .WithSummary("Runs the live version on rows of features and returns one prediction per row.")
            .WithDescription("Accepts application/json only. A request without Content-Type is read as JSON.")
            .WithRequestBody<PredictRequest>(JsonContentType)
            .Produces<PredictResponse>(StatusCodes.Status200OK, JsonContentType)
            .ProducesErrors(
                StatusCodes.Status400BadRequest,
                StatusCodes.Status404NotFound,
                StatusCodes.Status408RequestTimeout,
                StatusCodes.Status413PayloadTooLarge,
                StatusCodes.Status415UnsupportedMediaType,
                StatusCodes.Status429TooManyRequests,
                StatusCodes.Status500InternalServerError,
                StatusCodes.Status503ServiceUnavailable);
    }

    /// <summary>
    /// Returns the methods that a V1 model path accepts: POST for <c>/v1/models/{name}:predict</c>, GET and HEAD for
    /// <c>/v1/models/{name}</c>, and null for other paths. Routing cannot tell the two apart when it lists a path's
    /// methods, because it treats the <c>{name}:predict</c> segment as a parameter, so it lists GET, HEAD and POST for both.
    /// </summary>
    internal static string? V1AllowedMethods(PathString path)
    {
        if (!path.StartsWithSegments("/v1/models", StringComparison.OrdinalIgnoreCase, out PathString rest)
            || !rest.HasValue
            || rest.Value.Length < 2
            || rest.Value.IndexOf('/', 1) >= 0)
        {
            return null;
        }

        // Routing matches the ":predict" literal without regard to case.
        return rest.Value.EndsWith(PredictSuffix, StringComparison.OrdinalIgnoreCase) ? HttpMethods.Post : $"{HttpMethods.Get}, {HttpMethods.Head}";
    }

    private static IResult GetV1Model(HttpContext context, string name, LiveModel live, IOptions<ServerOptions> options)
    {
        // The status route also matches GET on the predict path, with ":predict" in the name, so send the 405 that
        // routing would send. The JSON routing error handler writes its body from the Allow header.
        if (!IsKnownModel(name, options.Value) && name.EndsWith(PredictSuffix, StringComparison.Ordinal))
        {
            context.Response.Headers.Allow = HttpMethods.Post;
            return Results.StatusCode(StatusCodes.Status405MethodNotAllowed);
        }

        return V1ModelStatus(name, live, options.Value);
    }

    private static IResult V1ModelStatus(string name, LiveModel live, ServerOptions options)
    {
        if (!IsKnownModel(name, options))
        {
            return UnknownModel(name, options);
        }

        return live.IsReady
            ? Results.Json(new { name, ready = true })
            : Results.Json(new { name, ready = false }, statusCode: StatusCodes.Status503ServiceUnavailable);
    }

    private static Task PredictAsync(HttpContext context, string name) =>
        MeasureAsync(context, options => PredictCoreAsync(context, name, options));

    private static async Task<string> PredictCoreAsync(HttpContext context, string name, ServerOptions options)
    {
        if (!IsKnownModel(name, options))
        {
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, new InferenceError($"Model '{ClientText.Truncate(name)}' is not served here.", "name", options.ModelName)).ConfigureAwait(false);
            return "not_found";
        }

        InferenceError? contentTypeError = CheckContentType(context.Request.ContentType, acceptsBinary: false);
        if (contentTypeError is not null)
        {
            await WriteErrorAsync(context, StatusCodes.Status415UnsupportedMediaType, contentTypeError).ConfigureAwait(false);
            return "bad_request";
        }

        (float[]? features, int rows, int featureCount, string? failure) = await ReceivePredictAsync(context, options).ConfigureAwait(false);
        if (features is null)
        {
            return failure!;
        }

        if (await SubmitAsync(context, features, rows, featureCount, null).ConfigureAwait(false) is not BatchOutcome outcome)
        {
            return "error";
        }

        if (outcome.Status != BatchStatus.Completed)
        {
            return await WriteFailedOutcomeAsync(context, options, outcome, null).ConfigureAwait(false);
        }

        await context.Response.WriteAsJsonAsync(PredictResponse(options.ModelName, outcome, rows), context.RequestAborted).ConfigureAwait(false);
        return "ok";
    }

    // Reads and parses the body. On failure it writes the error response and returns the outcome label instead.
    private static async Task<(float[]? Features, int Rows, int FeatureCount, string? Failure)> ReceivePredictAsync(HttpContext context, ServerOptions options)
    {
        (byte[]? body, int length, InferenceError? bodyError, int status) = await ReadBodyAsync(context, options.MaxRequestBodyBytes).ConfigureAwait(false);
        if (body is null)
        {
            return (null, 0, 0, await ReportBodyFailureAsync(context, bodyError, status).ConfigureAwait(false));
        }

        try
        {
            if (await LiveFeatureCountAsync(context).ConfigureAwait(false) is not int featureCount)
            {
                return (null, 0, 0, "unavailable");
            }

            var reader = new PredictRequestReader(featureCount, options.MaxBatchSize);
            if (!reader.TryRead(body.AsSpan(0, length), out float[] features, out int rows, out InferenceError? error))
            {
                await WriteErrorAsync(context, StatusCodes.Status400BadRequest, error!).ConfigureAwait(false);
                return (null, 0, 0, "bad_request");
            }

            return (features, rows, featureCount, null);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(body);
        }
    }

    // One prediction per instance: the most probable class and the probability of every class.
    private static object PredictResponse(string modelName, BatchOutcome outcome, int rows)
    {
        float[] probabilities = outcome.Probabilities!;
        int classes = outcome.ClassCount;
        var predictions = new object[rows];
        for (int row = 0; row < rows; row++)
        {
            float[] rowProbabilities = probabilities.AsSpan(row * classes, classes).ToArray();
            predictions[row] = new { label = Array.IndexOf(rowProbabilities, rowProbabilities.Max()), probabilities = rowProbabilities };
        }

        return new { model_name = modelName, model_version = outcome.Version.ToString(CultureInfo.InvariantCulture), predictions };
    }
}
