using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using System.Text.Json;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Batching;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace ContinualServe.Server.Inference;

/// <summary>
/// KServe Open Inference Protocol v2 over HTTP/JSON: health, model metadata and inference routes.
/// Every inference response carries <c>model_version</c>, the version whose weights computed it.
/// </summary>
public static partial class InferenceApi
{
    internal const string JsonContentType = "application/json";
    internal const string BinaryContentType = "application/octet-stream";
    internal const string BinaryHeaderName = "Inference-Header-Content-Length";

    // Status of a request whose client disconnected before its body was read, as nginx logs it. It is never sent.
    private const int ClientClosedRequest = 499;

    // Protocol extensions reported by the server metadata route: the binary tensor data extension.
    private static readonly string[] Extensions = ["binary_tensor_data"];

    public static IEndpointRouteBuilder MapInferenceApi(this IEndpointRouteBuilder routes)
    {
        ArgumentNullException.ThrowIfNull(routes);
        RouteGroupBuilder v2 = routes.MapGroup("/v2").WithTags("Inference (Open Inference Protocol v2)");
        v2.MapGetAndHead("/", ServerMetadata)
            .WithName("GetServerMetadata")
            .WithSummary("Server name, version and protocol extensions.")
            .Produces<ServerMetadataResponse>();
        v2.MapGetAndHead("/health/live", () => Results.Json(new { live = true }))
            .WithName("GetLive")
            .WithSummary("Liveness: 200 while the process serves HTTP.")
            .Produces<LiveResponse>();
        v2.MapGetAndHead("/health/ready", (LiveModel live) =>
            live.IsReady ? Results.Json(new { ready = true }) : Results.Json(new { ready = false }, statusCode: StatusCodes.Status503ServiceUnavailable))
            .WithName("GetReady")
            .WithSummary("Readiness: 200 once a model version is loaded, 503 before.")
            .Produces<ReadyResponse>()
            .Produces<ReadyResponse>(StatusCodes.Status503ServiceUnavailable);
        v2.MapGetAndHead("/models/{name}", ModelMetadata)
            .WithName("GetModelMetadata")
            .WithSummary("Metadata of the live version: its input and output tensors and class labels.")
            .Produces<ModelMetadataResponse>()
            .ProducesErrors(StatusCodes.Status404NotFound, StatusCodes.Status503ServiceUnavailable);
        v2.MapGetAndHead("/models/{name}/ready", ModelReady)
            .WithName("GetModelReady")
            .WithSummary("Model readiness: 200 once a version is loaded, 503 before, 404 for another model name.")
            .Produces<ModelReadyResponse>()
            .Produces<ModelReadyResponse>(StatusCodes.Status503ServiceUnavailable)
            .ProducesErrors(StatusCodes.Status404NotFound);
        v2.MapGetAndHead("/models/{name}/versions/{version}/ready", VersionReady)
            .WithName("GetModelVersionReady")
            .WithSummary("Version readiness: 200 for the live version, 404 naming the live version for any other.")
            .Produces<VersionReadyResponse>()
            .ProducesErrors(StatusCodes.Status400BadRequest, StatusCodes.Status404NotFound, StatusCodes.Status503ServiceUnavailable);
        v2.MapGetAndHead("/models/{name}/versions/{version}", (string name, string version, LiveModel live, IOptions<ServerOptions> options, HttpContext context) => VersionMetadata(name, version, live, options, context))
            .WithName("GetModelVersionMetadata")
            .WithSummary("Metadata of a version, which must be the live one.")
            .Produces<ModelMetadataResponse>()
            .ProducesErrors(StatusCodes.Status400BadRequest, StatusCodes.Status404NotFound, StatusCodes.Status503ServiceUnavailable);
        v2.MapPost("/models/{name}/infer", (HttpContext context, string name) => InferAsync(context, name, null))
            .WithName("Infer")
            .WithSummary("Runs the live version on a batch of inputs.")
            .WithInferenceMetadata();
        v2.MapPost("/models/{name}/versions/{version}/infer", (HttpContext context, string name, string version) => InferAsync(context, name, version))
            .WithName("InferVersion")
            .WithSummary("Runs a batch of inputs if the version is the live one, and returns 404 naming the live version otherwise.")
            .WithInferenceMetadata();
        MapV1(routes);
        return routes;
    }

    // Request and response schemas of the two infer routes, whose bodies InferenceRequestReader and
    // InferenceResponseWriter handle by hand.
    private static RouteHandlerBuilder WithInferenceMetadata(this RouteHandlerBuilder builder) =>
        builder
            .WithDescription(
                "The body is an Open Inference Protocol v2 request in application/json. With the binary tensor data "
                + "extension, the body is application/octet-stream: the JSON request (the input declaring "
                + "parameters.binary_data_size in place of data) followed by raw little-endian FP32 values, with the JSON "
                + "length in the Inference-Header-Content-Length request header. A request without Content-Type is read as JSON. "
                + "When the request sets binary_data on an output, or binary_data_output, the response is application/octet-stream "
                + "in the same layout, and its Inference-Header-Content-Length header gives the JSON length.")
            .WithRequestBody<InferenceRequest>(JsonContentType)
            .Produces<InferenceResponse>(StatusCodes.Status200OK, JsonContentType)
            .ProducesErrors(
                StatusCodes.Status400BadRequest,
                StatusCodes.Status404NotFound,
                StatusCodes.Status408RequestTimeout,
                StatusCodes.Status413PayloadTooLarge,
                StatusCodes.Status415UnsupportedMediaType,
                StatusCodes.Status429TooManyRequests,
                StatusCodes.Status500InternalServerError,
                StatusCodes.Status503ServiceUnavailable)
            .WithBinaryTensorData();

    private static IResult ServerMetadata() =>
        Results.Json(new { name = "continualserve", version = typeof(InferenceApi).Assembly.GetName().Version?.ToString() ?? "0", extensions = Extensions });

    private static IResult ModelMetadata(string name, LiveModel live, IOptions<ServerOptions> options, HttpContext context) =>
        VersionMetadata(name, null, live, options, context);

    private static IResult VersionMetadata(string name, string? version, LiveModel live, IOptions<ServerOptions> options, HttpContext context)
    {
        if (!IsKnownModel(name, options.Value))
        {
            return UnknownModel(name, options.Value);
        }

        long requestedVersion = 0;
        if (version is not null && !VersionSegment.TryParse(version, out requestedVersion, out InferenceError? versionError))
        {
            return versionError.ToResult(StatusCodes.Status400BadRequest);
        }

        if (!live.TryAcquire(out ModelLease lease))
        {
            return NoVersionLoadedError(context.RequestServices).ToResult(StatusCodes.Status503ServiceUnavailable);
        }

        using (lease)
        {
            ServedModel model = lease.Model;
            string liveVersion = model.Version.ToString(CultureInfo.InvariantCulture);
            if (version is not null && requestedVersion != model.Version)
            {
                return new InferenceError($"Version '{ClientText.Truncate(version)}' of model '{options.Value.ModelName}' is not loaded; the live version is {liveVersion}.", "version", liveVersion).ToResult(StatusCodes.Status404NotFound);
            }

            return Results.Json(new
            {
                name = options.Value.ModelName,
                versions = new[] { model.Version.ToString(CultureInfo.InvariantCulture) },
                platform = "torchsharp",
                architecture = model.Spec.Architecture,
                labels = model.Spec.Labels,
                inputs = new[] { new { name = ModelTensors.Input, datatype = "FP32", shape = new long[] { -1, model.Spec.FeatureCount } } },
                outputs = new[]
                {
                    new { name = ModelTensors.Probabilities, datatype = "FP32", shape = new long[] { -1, model.Spec.ClassCount } },
                    new { name = ModelTensors.Label, datatype = "INT64", shape = new long[] { -1 } },
                },
            });
        }
    }

    // A version is ready when it is the live one. Any other valid version gets the metadata route's 404, which names the live version.
    private static IResult VersionReady(string name, string version, LiveModel live, IOptions<ServerOptions> options, HttpContext context)
    {
        IResult metadata = VersionMetadata(name, version, live, options, context);
        bool failed = metadata is IStatusCodeHttpResult { StatusCode: int status } && status != StatusCodes.Status200OK;
        return failed ? metadata : Results.Json(new { name, version, ready = true });
    }

    private static IResult ModelReady(string name, LiveModel live, IOptions<ServerOptions> options)
    {
        if (!IsKnownModel(name, options.Value))
        {
            return UnknownModel(name, options.Value);
        }

        return live.IsReady
            ? Results.Json(new { name, ready = true })
            : Results.Json(new { name, ready = false }, statusCode: StatusCodes.Status503ServiceUnavailable);
    }

    private static Task InferAsync(HttpContext context, string name, string? requestedVersion) =>
        MeasureAsync(context, options => InferCoreAsync(context, name, requestedVersion, options));

    /// <summary>
    /// Runs an inference route and counts its outcome and duration. A request whose client disconnected before the
    /// response was written counts as "aborted", and nothing more is done for it, because no client is left to receive a
    /// response. So does a body cut short by a reset connection. A body cut short by a connection that the client
    /// closed in order still counts as "bad_request", because Kestrel reports it as a bad request before it reports the
    /// disconnect.
    /// </summary>
    private static async Task MeasureAsync(HttpContext context, Func<ServerOptions, Task<string>> route)
    {
        long started = Stopwatch.GetTimestamp();
        ServerOptions options = context.RequestServices.GetRequiredService<IOptions<ServerOptions>>().Value;
        string outcome;
        try
        {
            outcome = await route(options).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            outcome = "aborted";
        }

        RecordRequest(options.ModelName, outcome, Stopwatch.GetElapsedTime(started));
    }

    /// <summary>
    /// Counts a request's <paramref name="outcome"/>. Adds its duration to the latency histogram only when the request
    /// was queued for a forward pass: it succeeded (ok), timed out in the queue, or failed in the forward pass. Requests
    /// rejected at once (a full queue, no loaded version, a bad or oversized body) take microseconds. In the histogram
    /// they pulled the percentiles down: on a replica that rejected 96% of its requests with 429, the p50 was 55 µs.
    /// </summary>
    internal static void RecordRequest(string model, string outcome, TimeSpan elapsed)
    {
        ContinualServeMetrics.InferenceRequests.WithLabels(model, outcome).Inc();
        if (outcome is "ok" or "timeout" or "error")
        {
            ContinualServeMetrics.InferenceDuration.WithLabels(model).Observe(elapsed.TotalSeconds);
        }
    }

    private static async Task<string> InferCoreAsync(HttpContext context, string name, string? requestedVersion, ServerOptions options)
    {
        if (!IsKnownModel(name, options))
        {
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, new InferenceError($"Model '{ClientText.Truncate(name)}' is not served here.", "name", options.ModelName)).ConfigureAwait(false);
            return "not_found";
        }

        long? version = null;
        if (requestedVersion is not null)
        {
            if (!VersionSegment.TryParse(requestedVersion, out long parsed, out InferenceError? versionError))
            {
                await WriteErrorAsync(context, StatusCodes.Status400BadRequest, versionError).ConfigureAwait(false);
                return "bad_request";
            }

            version = parsed;
        }

        (InferenceInput? input, int featureCount, string? failure) = await ReceiveAsync(context, options).ConfigureAwait(false);
        if (input is null)
        {
            return failure!;
        }

        if (await SubmitAsync(context, input.Value.Data, input.Value.BatchSize, featureCount, version).ConfigureAwait(false) is not BatchOutcome outcome)
        {
            return "error";
        }

        return await WriteOutcomeAsync(context, options, input.Value, outcome, requestedVersion).ConfigureAwait(false);
    }

    // Reads and validates the body; on failure writes the error response and returns the outcome label instead.
    private static async Task<(InferenceInput? Input, int FeatureCount, string? Failure)> ReceiveAsync(HttpContext context, ServerOptions options)
    {
        InferenceError? contentTypeError = CheckContentType(context.Request.ContentType, acceptsBinary: true);
        if (contentTypeError is not null)
        {
            await WriteErrorAsync(context, StatusCodes.Status415UnsupportedMediaType, contentTypeError).ConfigureAwait(false);
            return (null, 0, "bad_request");
        }

        (byte[]? body, int length, InferenceError? bodyError, int status) = await ReadBodyAsync(context, options.MaxRequestBodyBytes).ConfigureAwait(false);
        if (body is null)
        {
            return (null, 0, await ReportBodyFailureAsync(context, bodyError, status).ConfigureAwait(false));
        }

        try
        {
            if (await LiveFeatureCountAsync(context).ConfigureAwait(false) is not int featureCount)
            {
                return (null, 0, "unavailable");
            }

            if (!TrySplitBinary(context, body.AsSpan(0, length), out int headerLength, out InferenceError? splitError))
            {
                await WriteErrorAsync(context, StatusCodes.Status400BadRequest, splitError!).ConfigureAwait(false);
                return (null, 0, "bad_request");
            }

            var reader = new InferenceRequestReader(featureCount, options.MaxBatchSize);
            if (!reader.TryRead(body.AsSpan(0, headerLength), body.AsSpan(headerLength, length - headerLength), out InferenceInput input, out InferenceError? error))
            {
                await WriteErrorAsync(context, StatusCodes.Status400BadRequest, error!).ConfigureAwait(false);
                return (null, 0, "bad_request");
            }

            return (input, featureCount, null);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(body);
        }
    }

    // A server that cannot load its pinned version never loads another one, so the error names the cause instead of
    // asking clients to wait.
    private static InferenceError NoVersionLoadedError(IServiceProvider services) =>
        services.GetService<ModelSwapper>()?.UnloadablePinVersion is long pinned
            ? new InferenceError(
                $"No model version is loaded, because pinned version {pinned} is missing or corrupt in this server's store.",
                null,
                "promote an intact version or remove the pin (DELETE /manage/v1/pin)")
            : new InferenceError("No model version is loaded yet.", null, "retry after the server reports ready");

    // Returns the live model's feature count, or null after writing a 503 response when no version is loaded yet.
    private static async Task<int?> LiveFeatureCountAsync(HttpContext context)
    {
        LiveModel live = context.RequestServices.GetRequiredService<LiveModel>();
        if (!live.TryAcquire(out ModelLease lease))
        {
            await WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable, NoVersionLoadedError(context.RequestServices)).ConfigureAwait(false);
            return null;
        }

        using (lease)
        {
            return lease.Model.Spec.FeatureCount;
        }
    }

    // Runs the rows through the batcher. Returns null after writing a 500 response when the forward pass failed.
    private static async Task<BatchOutcome?> SubmitAsync(HttpContext context, float[] features, int rows, int featureCount, long? version)
    {
        try
        {
            return await context.RequestServices.GetRequiredService<InferenceBatcher>().SubmitAsync(features, rows, featureCount, version).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is ExternalException or InvalidOperationException or ArgumentException)
        {
            // The batcher logged the failed forward pass; this request reports it without a stack trace.
            await WriteErrorAsync(context, StatusCodes.Status500InternalServerError, new InferenceError("The forward pass failed; see the server log.", null, null)).ConfigureAwait(false);
            return null;
        }
    }

    // A missing Content-Type is read as JSON, because the KServe Python client (InferenceRESTClient) sends JSON
    // requests without one. Other types, such as text/plain or the application/x-www-form-urlencoded that curl -d
    // sends by default, are rejected because they declare a body that is not JSON. JSON declared in a charset other
    // than UTF-8 (or its subset US-ASCII) is rejected as well, because the reader decodes every body as UTF-8.
    // The V1 route passes acceptsBinary false, because V1 has no binary extension.
    private static InferenceError? CheckContentType(string? contentType, bool acceptsBinary)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return null;
        }

        if (MediaTypeHeaderValue.TryParse(contentType, out MediaTypeHeaderValue? mediaType))
        {
            if (mediaType.MediaType.Equals(JsonContentType, StringComparison.OrdinalIgnoreCase))
            {
                return JsonCharset.Check(mediaType);
            }

            if (acceptsBinary && mediaType.MediaType.Equals(BinaryContentType, StringComparison.OrdinalIgnoreCase))
            {
                return null;
            }
        }

        return acceptsBinary
            ? new InferenceError(
                $"Content-Type '{ClientText.Truncate(contentType)}' is not supported. Send {JsonContentType}, or {BinaryContentType} with the binary tensor data extension.",
                "Content-Type",
                $"{JsonContentType} or {BinaryContentType}")
            : new InferenceError($"Content-Type '{ClientText.Truncate(contentType)}' is not supported by the V1 predict route. Send {JsonContentType}.", "Content-Type", JsonContentType);
    }

    // The binary data extension puts the JSON header length in Inference-Header-Content-Length; without it the body is all JSON.
    private static bool TrySplitBinary(HttpContext context, ReadOnlySpan<byte> body, out int headerLength, out InferenceError? error)
    {
        headerLength = body.Length;
        error = null;
        string? header = context.Request.Headers[BinaryHeaderName];
        if (header is null)
        {
            return true;
        }

        if (!int.TryParse(header, NumberStyles.None, CultureInfo.InvariantCulture, out int declared) || declared > body.Length)
        {
            error = new InferenceError($"{BinaryHeaderName} '{ClientText.Truncate(header)}' is invalid for a {body.Length}-byte body.", BinaryHeaderName, $"0 to {body.Length}");
            return false;
        }

        headerLength = declared;
        return true;
    }

    private static async Task<string> WriteOutcomeAsync(HttpContext context, ServerOptions options, InferenceInput input, BatchOutcome outcome, string? requestedVersion)
    {
        switch (outcome.Status)
        {
            case BatchStatus.Completed:
                await InferenceResponseWriter.WriteResponseAsync(context, options.ModelName, outcome.Version, input, outcome.Probabilities!, outcome.ClassCount).ConfigureAwait(false);
                return "ok";
            default:
                return await WriteFailedOutcomeAsync(context, options, outcome, requestedVersion).ConfigureAwait(false);
        }
    }

    // Writes the error response of a request the batcher did not complete and returns its outcome label.
    private static async Task<string> WriteFailedOutcomeAsync(HttpContext context, ServerOptions options, BatchOutcome outcome, string? requestedVersion)
    {
        switch (outcome.Status)
        {
            case BatchStatus.QueueFull:
                context.Response.Headers.RetryAfter = "1";
                await WriteErrorAsync(context, StatusCodes.Status429TooManyRequests, QueueFullError(context)).ConfigureAwait(false);
                return "rejected";
            case BatchStatus.DeadlineExceeded:
                await WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable, DeadlineError(context)).ConfigureAwait(false);
                return "timeout";
            case BatchStatus.InputShapeChanged:
                context.Response.Headers.RetryAfter = "1";
                await WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable, new InferenceError($"The live model changed to version {outcome.Version}, whose input has another shape, while the request waited.", "inputs[0].shape", "the shape in the model metadata, then retry")).ConfigureAwait(false);
                return "unavailable";
            case BatchStatus.VersionNotLoaded:
                await WriteErrorAsync(context, StatusCodes.Status404NotFound, new InferenceError($"Version '{ClientText.Truncate(requestedVersion ?? string.Empty)}' of model '{options.ModelName}' is not loaded; the live version is {outcome.Version}.", "version", outcome.Version.ToString(CultureInfo.InvariantCulture))).ConfigureAwait(false);
                return "not_found";
            default:
                await WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable, new InferenceError("No model version is loaded, or the server is shutting down.", null, "retry after the server reports ready")).ConfigureAwait(false);
                return "unavailable";
        }
    }

    // The queue errors name their settings, as the 413 does, so that a client can report them to the operator.
    private static InferenceError QueueFullError(HttpContext context)
    {
        BatchingOptions batching = context.RequestServices.GetRequiredService<IOptions<BatchingOptions>>().Value;
        const string Key = BatchingOptions.SectionName + ":" + nameof(BatchingOptions.QueueCapacity);
        return new InferenceError(
            string.Create(CultureInfo.InvariantCulture, $"The inference queue is full: it holds at most {batching.QueueCapacity} requests ({Key})."),
            null,
            "retry after 1 second");
    }

    private static InferenceError DeadlineError(HttpContext context)
    {
        BatchingOptions batching = context.RequestServices.GetRequiredService<IOptions<BatchingOptions>>().Value;
        const string Key = BatchingOptions.SectionName + ":" + nameof(BatchingOptions.RequestTimeout);
        double seconds = batching.RequestTimeout.TotalSeconds;
        return new InferenceError(
            string.Create(CultureInfo.InvariantCulture, $"The request waited in the queue past its deadline of {seconds} s ({Key})."),
            null,
            "retry later or lower the request rate");
    }

    /// <summary>The 413 error for a body over <paramref name="maxBytes"/>, naming the setting that sets the limit.</summary>
    internal static InferenceError TooLarge(long maxBytes) =>
        new($"The request body exceeds the limit of {maxBytes} bytes ({ServerOptions.MaxRequestBodyBytesKey}).", "body", $"at most {maxBytes} bytes");

    /// <summary>
    /// Returns the 408 error for a body that arrived too slowly. It names the two settings of the limit, because
    /// Kestrel's own message names its internal MinRequestBodyDataRate option instead.
    /// </summary>
    internal static InferenceError TooSlow(HttpContext context)
    {
        HttpLimitsOptions limits = context.RequestServices.GetRequiredService<IOptions<HttpLimitsOptions>>().Value;
        const string RateKey = HttpLimitsOptions.SectionName + ":" + nameof(HttpLimitsOptions.MinRequestBodyBytesPerSecond);
        const string GraceKey = HttpLimitsOptions.SectionName + ":" + nameof(HttpLimitsOptions.MinBodyRateGracePeriod);
        return new InferenceError(
            string.Create(
                CultureInfo.InvariantCulture,
                $"The request body arrived slower than {limits.MinRequestBodyBytesPerSecond} bytes per second for longer than {limits.MinBodyRateGracePeriod.TotalSeconds} s ({RateKey}, {GraceKey})."),
            "body",
            string.Create(CultureInfo.InvariantCulture, $"at least {limits.MinRequestBodyBytesPerSecond} bytes per second"));
    }

    /// <summary>
    /// Writes the error response of a body that <see cref="ReadBodyAsync"/> could not read and returns the outcome label.
    /// A client that disconnected mid-body gets no response, because none can reach it, and its connection is aborted.
    /// </summary>
    private static async Task<string> ReportBodyFailureAsync(HttpContext context, InferenceError? error, int status)
    {
        if (status == ClientClosedRequest)
        {
            // Without the abort, Kestrel tries to drain the rest of the body from the broken connection and logs error 67.
            context.Abort();
            return "aborted";
        }

        await WriteErrorAsync(context, status, error!).ConfigureAwait(false);
        return status == StatusCodes.Status413PayloadTooLarge ? "too_large" : "bad_request";
    }

    /// <summary>
    /// Reads the body into a pooled buffer (the caller returns it), enforcing the size limit. Returns a null body with
    /// the error and status to send, or with status <see cref="ClientClosedRequest"/> when the client disconnected.
    /// </summary>
    private static async Task<(byte[]? Body, int Length, InferenceError? Error, int Status)> ReadBodyAsync(HttpContext context, long maxBytes)
    {
        long? declared = context.Request.ContentLength;
        if (declared > maxBytes)
        {
            return (null, 0, new InferenceError($"The request body is {declared} bytes; the limit is {maxBytes} ({ServerOptions.MaxRequestBodyBytesKey}).", "body", $"at most {maxBytes} bytes"), StatusCodes.Status413PayloadTooLarge);
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(declared ?? 64 * 1024, maxBytes) + 1);
        int length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (length > maxBytes)
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                        return (null, 0, TooLarge(maxBytes), StatusCodes.Status413PayloadTooLarge);
                    }

                    byte[] larger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, maxBytes + 1));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                int read = await context.Request.Body.ReadAsync(buffer.AsMemory(length), context.RequestAborted).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                length += read;
            }
        }
        catch (BadHttpRequestException exception)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            // Kestrel enforces the size and rate limits, and its messages do not name the settings.
            InferenceError error = exception.StatusCode switch
            {
                StatusCodes.Status413PayloadTooLarge => TooLarge(maxBytes),
                StatusCodes.Status408RequestTimeout => TooSlow(context),
                _ => new InferenceError($"The request body could not be read: {exception.Message}", "body", "a complete JSON body"),
            };
            return (null, 0, error, exception.StatusCode);
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException)
        {
            // The client disconnected mid-body. A reset connection raises ConnectionResetException (an IOException)
            // before Kestrel cancels RequestAborted, so the exception type decides here, not the token.
            ArrayPool<byte>.Shared.Return(buffer);
            return (null, 0, null, ClientClosedRequest);
        }

        if (length > maxBytes)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return (null, 0, TooLarge(maxBytes), StatusCodes.Status413PayloadTooLarge);
        }

        return (buffer, length, null, StatusCodes.Status200OK);
    }

    private static bool IsKnownModel(string name, ServerOptions options) => string.Equals(name, options.ModelName, StringComparison.Ordinal);

    private static IResult UnknownModel(string name, ServerOptions options) =>
        new InferenceError($"Model '{ClientText.Truncate(name)}' is not served here.", "name", options.ModelName).ToResult(StatusCodes.Status404NotFound);

    private static Task WriteErrorAsync(HttpContext context, int statusCode, InferenceError error) => error.WriteAsync(context, statusCode);
}
