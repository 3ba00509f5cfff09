using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Text.Json;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Inference;

/// <summary>
/// KServe Open Inference Protocol v2 over HTTP/JSON: health, model metadata and inference routes.
/// Every inference response carries <c>model_version</c>, the version whose weights computed it.
/// </summary>
public static class InferenceApi
{
    private const string JsonContentType = "application/json";

    public static IEndpointRouteBuilder MapInferenceApi(this IEndpointRouteBuilder routes)
    {
        ArgumentNullException.ThrowIfNull(routes);
        RouteGroupBuilder v2 = routes.MapGroup("/v2").WithTags("Inference (Open Inference Protocol v2)");
        v2.MapGet("/", ServerMetadata);
        v2.MapGet("/health/live", () => Results.Json(new { live = true }));
        v2.MapGet("/health/ready", (LiveModel live) =>
            live.IsReady ? Results.Json(new { ready = true }) : Results.Json(new { ready = false }, statusCode: StatusCodes.Status503ServiceUnavailable));
        v2.MapGet("/models/{name}", ModelMetadata);
        v2.MapGet("/models/{name}/ready", ModelReady);
        v2.MapPost("/models/{name}/infer", (HttpContext context, string name) => InferAsync(context, name, null));
        v2.MapPost("/models/{name}/versions/{version}/infer", (HttpContext context, string name, string version) => InferAsync(context, name, version));
        return routes;
    }

    private static IResult ServerMetadata() =>
        Results.Json(new { name = "continualserve", version = typeof(InferenceApi).Assembly.GetName().Version?.ToString() ?? "0", extensions = Array.Empty<string>() });

    private static IResult ModelMetadata(string name, LiveModel live, IOptions<ServerOptions> options)
    {
        if (!IsKnownModel(name, options.Value) || !live.TryAcquire(out ModelLease lease))
        {
            return UnknownModel(name, options.Value);
        }

        using (lease)
        {
            ServedModel model = lease.Model;
            return Results.Json(new
            {
                name = options.Value.ModelName,
                versions = new[] { model.Version.ToString(CultureInfo.InvariantCulture) },
                platform = "torchsharp",
                architecture = model.Spec.Architecture,
                labels = model.Spec.Labels,
                inputs = new[] { new { name = "input", datatype = "FP32", shape = new long[] { -1, model.Spec.FeatureCount } } },
                outputs = new[]
                {
                    new { name = "probabilities", datatype = "FP32", shape = new long[] { -1, model.Spec.ClassCount } },
                    new { name = "label", datatype = "INT64", shape = new long[] { -1 } },
                },
            });
        }
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

    private static async Task InferAsync(HttpContext context, string name, string? requestedVersion)
    {
        long started = Stopwatch.GetTimestamp();
        ServerOptions options = context.RequestServices.GetRequiredService<IOptions<ServerOptions>>().Value;
        string outcome = await InferCoreAsync(context, name, requestedVersion, options).ConfigureAwait(false);
        ContinualServeMetrics.InferenceRequests.WithLabels(options.ModelName, outcome).Inc();
        ContinualServeMetrics.InferenceDuration.WithLabels(options.ModelName).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    private static async Task<string> InferCoreAsync(HttpContext context, string name, string? requestedVersion, ServerOptions options)
    {
        if (!IsKnownModel(name, options))
        {
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, new InferenceError($"Model '{name}' is not served here.", "name", options.ModelName)).ConfigureAwait(false);
            return "not_found";
        }

        (byte[]? body, int length, InferenceError? bodyError, int status) = await ReadBodyAsync(context, options.MaxRequestBodyBytes).ConfigureAwait(false);
        if (bodyError is not null)
        {
            await WriteErrorAsync(context, status, bodyError).ConfigureAwait(false);
            return status == StatusCodes.Status413PayloadTooLarge ? "too_large" : "bad_request";
        }

        try
        {
            return await InferOnBodyAsync(context, body.AsMemory(0, length), requestedVersion, options).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(body!);
        }
    }

    private static async Task<string> InferOnBodyAsync(HttpContext context, ReadOnlyMemory<byte> body, string? requestedVersion, ServerOptions options)
    {
        LiveModel live = context.RequestServices.GetRequiredService<LiveModel>();
        if (!live.TryAcquire(out ModelLease lease))
        {
            await WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable, new InferenceError("No model version is loaded yet.", null, "retry after the server reports ready")).ConfigureAwait(false);
            return "unavailable";
        }

        InferenceInput input;
        InferenceError? error;
        long version;
        float[] probabilities;
        int classCount;
        using (lease)
        {
            ServedModel model = lease.Model;
            version = model.Version;
            if (requestedVersion is not null && requestedVersion != version.ToString(CultureInfo.InvariantCulture))
            {
                await WriteErrorAsync(context, StatusCodes.Status404NotFound, new InferenceError($"Version '{requestedVersion}' of model '{options.ModelName}' is not loaded; the live version is {version}.", "version", version.ToString(CultureInfo.InvariantCulture))).ConfigureAwait(false);
                return "not_found";
            }

            var reader = new InferenceRequestReader(model.Spec.FeatureCount, options.MaxBatchSize);
            if (!reader.TryRead(body.Span, out input, out error))
            {
                await WriteErrorAsync(context, StatusCodes.Status400BadRequest, error!).ConfigureAwait(false);
                return "bad_request";
            }

            classCount = model.Spec.ClassCount;
            probabilities = new float[input.BatchSize * classCount];
            model.Predict(input.Data.AsSpan(0, input.BatchSize * model.Spec.FeatureCount), input.BatchSize, probabilities);
            ContinualServeMetrics.BatchSize.WithLabels(options.ModelName).Observe(input.BatchSize);
        }

        await WriteResponseAsync(context, options.ModelName, version, input, probabilities, classCount).ConfigureAwait(false);
        return "ok";
    }

    private static async Task WriteResponseAsync(HttpContext context, string modelName, long version, InferenceInput input, float[] probabilities, int classCount)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = JsonContentType;
        PipeWriter pipe = context.Response.BodyWriter;
        using (var writer = new Utf8JsonWriter(pipe))
        {
            writer.WriteStartObject();
            writer.WriteString("model_name", modelName);
            writer.WriteString("model_version", version.ToString(CultureInfo.InvariantCulture));
            if (input.RequestId is not null)
            {
                writer.WriteString("id", input.RequestId);
            }

            writer.WriteStartArray("outputs");
            WriteProbabilities(writer, input.BatchSize, probabilities, classCount);
            WriteLabels(writer, input.BatchSize, probabilities, classCount);
            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        await pipe.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }

    private static void WriteProbabilities(Utf8JsonWriter writer, int batchSize, float[] probabilities, int classCount)
    {
        writer.WriteStartObject();
        writer.WriteString("name", "probabilities");
        writer.WriteString("datatype", "FP32");
        writer.WriteStartArray("shape");
        writer.WriteNumberValue(batchSize);
        writer.WriteNumberValue(classCount);
        writer.WriteEndArray();
        writer.WriteStartArray("data");
        foreach (float probability in probabilities)
        {
            writer.WriteNumberValue(probability);
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    private static void WriteLabels(Utf8JsonWriter writer, int batchSize, float[] probabilities, int classCount)
    {
        writer.WriteStartObject();
        writer.WriteString("name", "label");
        writer.WriteString("datatype", "INT64");
        writer.WriteStartArray("shape");
        writer.WriteNumberValue(batchSize);
        writer.WriteEndArray();
        writer.WriteStartArray("data");
        for (int row = 0; row < batchSize; row++)
        {
            ReadOnlySpan<float> values = probabilities.AsSpan(row * classCount, classCount);
            int best = 0;
            for (int column = 1; column < classCount; column++)
            {
                if (values[column] > values[best])
                {
                    best = column;
                }
            }

            writer.WriteNumberValue(best);
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    /// <summary>Reads the body into a pooled buffer (the caller returns it), enforcing the size limit.</summary>
    private static async Task<(byte[]? Body, int Length, InferenceError? Error, int Status)> ReadBodyAsync(HttpContext context, long maxBytes)
    {
        long? declared = context.Request.ContentLength;
        if (declared > maxBytes)
        {
            return (null, 0, new InferenceError($"The request body is {declared} bytes; the limit is {maxBytes}.", "body", $"at most {maxBytes} bytes"), StatusCodes.Status413PayloadTooLarge);
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
                        return (null, 0, new InferenceError($"The request body exceeds the limit of {maxBytes} bytes.", "body", $"at most {maxBytes} bytes"), StatusCodes.Status413PayloadTooLarge);
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
            return (null, 0, new InferenceError($"The request body could not be read: {exception.Message}", "body", "a complete JSON body"), exception.StatusCode);
        }

        if (length > maxBytes)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return (null, 0, new InferenceError($"The request body exceeds the limit of {maxBytes} bytes.", "body", $"at most {maxBytes} bytes"), StatusCodes.Status413PayloadTooLarge);
        }

        return (buffer, length, null, StatusCodes.Status200OK);
    }

    private static bool IsKnownModel(string name, ServerOptions options) => string.Equals(name, options.ModelName, StringComparison.Ordinal);

    private static IResult UnknownModel(string name, ServerOptions options) =>
        Results.Json(new InferenceError($"Model '{name}' is not served here.", "name", options.ModelName), statusCode: StatusCodes.Status404NotFound);

    private static async Task WriteErrorAsync(HttpContext context, int statusCode, InferenceError error)
    {
        context.Response.StatusCode = statusCode;
        await context.Response.WriteAsJsonAsync(error, context.RequestAborted).ConfigureAwait(false);
    }
}
