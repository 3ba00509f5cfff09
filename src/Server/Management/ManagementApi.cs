using System.Globalization;
using System.Text.Json;
using ContinualServe.Learner;
using ContinualServe.Model;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Hosting;
using ContinualServe.Server.Inference;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace ContinualServe.Server.Management;

/// <summary>
/// Management routes under /manage/v1: list versions, promote a version, roll back, follow the newest version
/// again, pause and resume learning, read the learner's state, and upload the golden set. Every route needs the bearer token.
/// Decisions are files in the model store, so that all servers and the learner sharing it follow them.
/// </summary>
public static partial class ManagementApi
{
    public const string Prefix = "/manage/v1";

    // The store's options (web defaults, so names match without regard to case), rejecting a property given twice
    // instead of keeping the last one.
    // NOTE: the serializer checks only the properties that it maps, so an unknown property given twice is accepted.
    private static readonly JsonSerializerOptions GoldenSetJsonOptions = new(ModelSpec.JsonOptions) { AllowDuplicateProperties = false };

    /// <summary>
    /// Maps the routes behind <paramref name="tokenFilter"/>. The middleware of <see cref="ManagementHosting.MapManagement"/>
    /// checks every request under the prefix with the same filter before routing, and the routes check again, so that
    /// they stay guarded whatever path or middleware a request comes through.
    /// </summary>
    internal static IEndpointRouteBuilder MapManagementApi(this IEndpointRouteBuilder routes, BearerTokenFilter tokenFilter)
    {
        ArgumentNullException.ThrowIfNull(routes);
        ArgumentNullException.ThrowIfNull(tokenFilter);
        RouteGroupBuilder group = routes.MapGroup(Prefix).WithTags("Management");
        ILogger logger = routes.ServiceProvider.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ManagementApi));
        group.AddEndpointFilter(tokenFilter);
        group.AddEndpointFilter(new ManagementAuditFilter(logger));
        group.AddEndpointFilter(new StoreFailureFilter(logger));

        // 401 without a bearer token, 403 with a wrong one, and 404 on a port other than Management:Urls when it is set.
        group.WithBearerSecurity()
            .ProducesErrors(StatusCodes.Status401Unauthorized, StatusCodes.Status403Forbidden, StatusCodes.Status404NotFound);
        group.MapGetAndHead("/versions", ListVersions)
            .WithName("ListVersions")
            .WithSummary("Lists every version in the model store, and the live and pinned versions.")
            .Produces<VersionListResponse>()
            .ProducesErrors(StatusCodes.Status503ServiceUnavailable);

        // A replica takes its pin from the learner's announcements, so pins, like learning and golden-set changes,
        // are made on a server that shares the learner's store.
        RouteGroupBuilder learner = group.MapGroup("");
        learner.AddEndpointFilter(new LearnerControlFilter(routes.ServiceProvider));
        learner.ProducesErrors(StatusCodes.Status409Conflict);
        learner.MapPost("/versions/{version}/promote", Promote)
            .WithName("PromoteVersion")
            .WithSummary("Serves a version from this server's store and pins it.")
            .WithDescription("409 when the version is corrupt, or when this server is a replica that follows the version topic.")
            .Produces<PinStateResponse>()
            .ProducesErrors(StatusCodes.Status400BadRequest, StatusCodes.Status503ServiceUnavailable);
        learner.MapPost("/rollback", Rollback)
            .WithName("Rollback")
            .WithSummary("Serves and pins the newest intact version older than the live one.")
            .WithDescription("409 when no older intact version is in the store, or when this server is a replica.")
            .Produces<PinStateResponse>()
            .ProducesErrors(StatusCodes.Status503ServiceUnavailable);
        learner.MapDelete("/pin", Unpin)
            .WithName("Unpin")
            .WithSummary("Removes the pin, so that servers follow the newest intact version again.")
            .Produces<PinStateResponse>()
            .ProducesErrors(StatusCodes.Status503ServiceUnavailable);
        learner.MapGetAndHead("/learning", LearningState)
            .WithName("GetLearningState")
            .WithSummary("Returns whether learning is paused, and the state of the learner when this process runs one.")
            .WithDescription("learner is null in a process that runs no learner (serve), also when it shares the learner's store.")
            .Produces<LearningStateResponse>()
            .ProducesErrors(StatusCodes.Status503ServiceUnavailable);
        learner.MapPost("/learning/pause", (ModelSwapper swapper) => SetLearningPaused(swapper, paused: true))
            .WithName("PauseLearning")
            .WithSummary("Pauses learning: the learner stops fetching examples after publishing the work it has consumed.")
            .Produces<LearningPauseResponse>()
            .ProducesErrors(StatusCodes.Status503ServiceUnavailable);
        learner.MapPost("/learning/resume", (ModelSwapper swapper) => SetLearningPaused(swapper, paused: false))
            .WithName("ResumeLearning")
            .WithSummary("Resumes learning.")
            .Produces<LearningPauseResponse>()
            .ProducesErrors(StatusCodes.Status503ServiceUnavailable);
        learner.MapGetAndHead("/golden-set", GetGoldenSet)
            .WithName("GetGoldenSet")
            .WithSummary("Returns the size and upload time of the golden set, or 404 when none was uploaded.")
            .Produces<GoldenSetSummaryResponse>()
            .ProducesErrors(StatusCodes.Status503ServiceUnavailable);
        learner.MapPut("/golden-set", UploadGoldenSetAsync)
            .WithName("UploadGoldenSet")
            .WithSummary("Validates a golden set against the live model's spec and stores it, replacing the previous one.")
            .WithDescription(
                "The body is read as UTF-8 JSON whatever its Content-Type. A Content-Type that declares another charset gets 415. "
                + "503 when no version is loaded to check the examples against, or when the model store cannot be written.")
            .WithRequestBody<GoldenSetUpload>(InferenceApi.JsonContentType)
            .Produces<GoldenSetSummaryResponse>()
            .ProducesErrors(
                StatusCodes.Status400BadRequest,
                StatusCodes.Status408RequestTimeout,
                StatusCodes.Status413PayloadTooLarge,
                StatusCodes.Status415UnsupportedMediaType,
                StatusCodes.Status503ServiceUnavailable);
        learner.MapDelete("/golden-set", DeleteGoldenSet)
            .WithName("DeleteGoldenSet")
            .WithSummary("Removes the golden set, so that the learner promotes candidates without a golden-set floor.")
            .WithDescription("404 when none was uploaded, 409 while an upload runs, 503 when the model store cannot be written.")
            .Produces<GoldenSetDeleteResponse>()
            .ProducesErrors(StatusCodes.Status404NotFound, StatusCodes.Status503ServiceUnavailable);
        return routes;
    }

    private static IResult ListVersions(ModelSwapper swapper, LiveModel live)
    {
        var versions = new List<object>();
        var intactVersions = new HashSet<long>();
        foreach (long number in swapper.Store.ListVersionNumbers())
        {
            bool intact = swapper.Store.TryLoad(number, out ModelVersion? version);
            if (!intact && !Directory.Exists(swapper.Store.VersionDirectory(number)))
            {
                // Retention deleted this version after the listing.
                continue;
            }

            if (intact)
            {
                intactVersions.Add(number);
            }

            versions.Add(new
            {
                version = number,
                intact,
                createdAt = version?.Manifest.CreatedAt,
                parentVersion = version?.Manifest.ParentVersion,
                examplesTrained = version?.Manifest.ExamplesTrained,
                averageAccuracy = version?.Manifest.Evaluation?.AverageAccuracy,
                weightsSha256 = version?.Manifest.WeightsSha256,
            });
        }

        // An unreadable pin file is reported rather than failing the listing, because DELETE /pin is how an operator repairs it.
        if (!StoreControlFiles.TryReadPinnedVersion(swapper.Store.RootDirectory, out long? pinned, out string? problem))
        {
            return Ok(new { live = live.CurrentVersion, pinned = (long?)null, pinError = problem + " Send DELETE /manage/v1/pin to remove it.", versions });
        }

        // A pinned version that is not live could not be loaded, because it is missing or corrupt in this store.
        return pinned is long pinnedVersion && pinnedVersion != live.CurrentVersion && !intactVersions.Contains(pinnedVersion)
            ? Ok(new { live = live.CurrentVersion, pinned, pinError = swapper.DescribeUnloadablePin(pinnedVersion), versions })
            : Ok(new { live = live.CurrentVersion, pinned, versions });
    }

    private static IResult Promote(string version, ModelSwapper swapper)
    {
        if (!VersionSegment.TryParse(version, out long number, out InferenceError? versionError))
        {
            return Error(StatusCodes.Status400BadRequest, versionError);
        }

        return swapper.TryPinAndServe(number) switch
        {
            PinOutcome.NotFound => Error(StatusCodes.Status404NotFound, new InferenceError($"Version {number} is not in the model store.", "version", "one of GET /manage/v1/versions")),
            PinOutcome.Corrupt => Error(StatusCodes.Status409Conflict, new InferenceError($"Version {number} cannot be served: a file of it is missing or unreadable, or its weights do not match their SHA-256 or do not fit its spec. The server log names the problem (event 101).", "version", "an intact version")),
            _ => Ok(new { live = number, pinned = number }),
        };
    }

    private static IResult Rollback(ModelSwapper swapper, LiveModel live)
    {
        long? previous = live.CurrentVersion;
        ModelVersion? pinned = swapper.TryPinOlderAndServe();
        if (pinned is not null)
        {
            return Ok(new { live = pinned.Number, pinned = pinned.Number });
        }

        string message = previous is long liveVersion
            ? $"No intact version older than the live version {liveVersion} is in the store."
            : "No version is live and the store has no intact version to roll back to.";
        return Error(StatusCodes.Status409Conflict, new InferenceError(message, null, "an older intact version"));
    }

    private static IResult Unpin(ModelSwapper swapper) =>
        Ok(new { live = swapper.UnpinAndServeNewest(), pinned = (long?)null });

    // The learner is registered only in the roles that run one, so the parameter is null in serve.
    private static IResult LearningState(ModelSwapper swapper, [FromServices] ContinualLearner? learner) =>
        Ok(new
        {
            paused = StoreControlFiles.IsLearningPaused(swapper.Store.RootDirectory),
            learner = learner is null ? null : LearnerState.Capture(learner),
        });

    private static IResult SetLearningPaused(ModelSwapper swapper, bool paused)
    {
        StoreControlFiles.SetLearningPaused(swapper.Store, paused);
        return Ok(new { paused });
    }

    private static IResult GetGoldenSet(ModelSwapper swapper, LiveModel live)
    {
        // A stored set that cannot be read would otherwise end in an empty 500. The learner holds its candidate until
        // the set is replaced, so the operator needs the reason.
        string path = Path.Combine(swapper.Store.RootDirectory, GoldenSet.FileName);
        GoldenSet? golden;
        try
        {
            golden = GoldenSet.TryLoad(swapper.Store.RootDirectory);
        }
        catch (Exception exception) when (exception is JsonException or InvalidDataException or IOException or UnauthorizedAccessException)
        {
            // An upload cannot replace a directory or a file this process may not read, so only a damaged file gets that advice.
            string nextStep = exception is JsonException or InvalidDataException
                ? "upload a new golden set with PUT /manage/v1/golden-set"
                : $"remove {path} by hand, or make it a file this server can read, then upload a golden set";
            return Error(StatusCodes.Status409Conflict, new InferenceError($"The stored golden set {path} cannot be read: {exception.Message}", null, nextStep));
        }

        if (golden is null)
        {
            return Error(StatusCodes.Status404NotFound, new InferenceError("No golden set was uploaded.", null, "PUT /manage/v1/golden-set first"));
        }

        if (GoldenSetMismatch(golden, live) is { } mismatch)
        {
            return Error(StatusCodes.Status409Conflict, new InferenceError(
                $"The stored golden set {path} does not fit the live model: {mismatch} The learner holds its next candidate, and "
                    + "consumes nothing, until the golden set is replaced or removed (error 235).",
                null,
                "upload a golden set that fits the model with PUT /manage/v1/golden-set, or remove it with DELETE /manage/v1/golden-set"));
        }

        // A file written by hand may lack uploadedAt, which reads as 0001-01-01, so its last write time is reported instead.
        DateTimeOffset uploadedAt = golden.UploadedAt == default
            ? new DateTimeOffset(File.GetLastWriteTimeUtc(path), TimeSpan.Zero)
            : golden.UploadedAt;
        return Ok(new { examples = golden.Examples.Count, uploadedAt });
    }

    // Returns why golden does not fit the live model, or null when it fits or no version is loaded to check it against.
    private static string? GoldenSetMismatch(GoldenSet golden, LiveModel live)
    {
        if (!live.TryAcquire(out ModelLease lease))
        {
            return null;
        }

        using (lease)
        {
            try
            {
                golden.Validate(lease.Model.Spec);
                return null;
            }
            catch (InvalidDataException exception)
            {
                return exception.Message;
            }
        }
    }

    private static IResult DeleteGoldenSet(HttpContext context, ModelSwapper swapper, GoldenSetUploadGate gate)
    {
        // A removal during an upload would race the upload's rename, so it takes the upload gate as a second upload would.
        if (!gate.TryEnter())
        {
            return GoldenSetBusy(context, "A golden-set upload is in progress on this server.", "retry after the upload ends");
        }

        try
        {
            return GoldenSet.Delete(swapper.Store)
                ? Ok(new { deleted = true })
                : Error(
                    StatusCodes.Status404NotFound,
                    new InferenceError("There is no golden set to delete: none was uploaded, or it was already deleted.", null, "nothing, or PUT /manage/v1/golden-set to store one"));
        }
        finally
        {
            gate.Exit();
        }
    }

    // The 409 of a golden-set request that finds the upload gate taken, with Retry-After: 1.
    private static IResult GoldenSetBusy(HttpContext context, string error, string expected)
    {
        context.Response.Headers.RetryAfter = "1";
        return Error(StatusCodes.Status409Conflict, new InferenceError(error, null, expected));
    }

    private static async Task<IResult> UploadGoldenSetAsync(
        HttpContext context, ModelSwapper swapper, LiveModel live, IOptions<ServerOptions> options, GoldenSetUploadGate gate)
    {
        if (!gate.TryEnter())
        {
            return GoldenSetBusy(
                context,
                "Another golden-set upload is in progress on this server. Uploads run one at a time, because parsing one takes about ten times its size in memory.",
                "retry after the other upload ends");
        }

        try
        {
            return await StoreGoldenSetAsync(context, swapper, live, options).ConfigureAwait(false);
        }
        finally
        {
            gate.Exit();
        }
    }

    private static async Task<IResult> StoreGoldenSetAsync(HttpContext context, ModelSwapper swapper, LiveModel live, IOptions<ServerOptions> options)
    {
        // The body is parsed as UTF-8 whatever its Content-Type, so only a declared charset is checked.
        if (MediaTypeHeaderValue.TryParse(context.Request.ContentType, out MediaTypeHeaderValue? mediaType)
            && JsonCharset.Check(mediaType) is { } charsetError)
        {
            return Error(StatusCodes.Status415UnsupportedMediaType, charsetError);
        }

        // Checked before the first read, because once Kestrel rejects the body it cannot be drained for the 413.
        long maxBytes = options.Value.MaxRequestBodyBytes;
        if (context.Request.ContentLength > maxBytes)
        {
            return Error(StatusCodes.Status413PayloadTooLarge, InferenceApi.TooLarge(maxBytes));
        }

        GoldenSet? golden;
        try
        {
            golden = await JsonSerializer.DeserializeAsync<GoldenSet>(context.Request.Body, GoldenSetJsonOptions, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException exception)
        {
            return Error(StatusCodes.Status400BadRequest, GoldenSetJsonError(exception));
        }
        catch (BadHttpRequestException exception)
        {
            InferenceError error = exception.StatusCode switch
            {
                StatusCodes.Status413PayloadTooLarge => InferenceApi.TooLarge(options.Value.MaxRequestBodyBytes),
                StatusCodes.Status408RequestTimeout => InferenceApi.TooSlow(context),
                _ => new InferenceError($"The request body could not be read: {exception.Message}", "body", $"at most {options.Value.MaxRequestBodyBytes} bytes"),
            };
            return Error(exception.StatusCode, error);
        }
        catch (Exception exception) when (exception is IOException or OperationCanceledException)
        {
            // Any other IOException (BadHttpRequestException, caught above, is one) means that the client disconnected
            // mid-body, as a reset's ConnectionResetException does. The store failure filter would report it as a failed
            // write. The abort stops Kestrel from draining the broken body.
            context.Abort();
            return Error(StatusCodes.Status400BadRequest, new InferenceError("The request body could not be read, because the client closed the connection.", "body", null));
        }

        if (golden is null)
        {
            return Error(StatusCodes.Status400BadRequest, new InferenceError("The golden set is null.", "body", "a JSON object with 'examples'"));
        }

        if (!live.TryAcquire(out ModelLease lease))
        {
            return Error(StatusCodes.Status503ServiceUnavailable, new InferenceError("No model version is loaded, so the golden set cannot be checked against its spec.", null, "retry after the server reports ready"));
        }

        using (lease)
        {
            if (NonFiniteFeature(golden) is { } notFinite)
            {
                return Error(StatusCodes.Status400BadRequest, new InferenceError(notFinite, "examples", "finite JSON numbers as features"));
            }

            try
            {
                golden.Validate(lease.Model.Spec);
            }
            catch (InvalidDataException exception)
            {
                return Error(StatusCodes.Status400BadRequest, new InferenceError(exception.Message, "examples", $"labels 0 to {lease.Model.Spec.ClassCount - 1} and {lease.Model.Spec.FeatureCount} finite features each"));
            }
        }

        GoldenSet stored = golden with { UploadedAt = DateTimeOffset.UtcNow };
        stored.Save(swapper.Store);
        return Ok(new { examples = stored.Examples.Count, uploadedAt = stored.UploadedAt });
    }

    // The upload accepts numbers in strings, and System.Text.Json then reads the strings "NaN", "Infinity" and "-Infinity"
    // as those values, so a NaN can only come from a string. An infinity comes from such a string or from a number beyond
    // the FP32 range. Returns the error for the first such feature, or null when every feature is finite.
    private static string? NonFiniteFeature(GoldenSet golden)
    {
        if (golden.Examples is null)
        {
            return null;
        }

        for (int index = 0; index < golden.Examples.Count; index++)
        {
            float[]? features = golden.Examples[index]?.Features;
            int feature = features is null ? -1 : Array.FindIndex(features, value => !float.IsFinite(value));
            if (feature < 0)
            {
                continue;
            }

            string value = float.IsNaN(features![feature])
                ? "is NaN (the string \"NaN\"), which is not allowed"
                : string.Create(
                    CultureInfo.InvariantCulture,
                    $"is infinite (the string \"Infinity\" or \"-Infinity\", or a number beyond the FP32 range, whose largest magnitude is {float.MaxValue}), which is not allowed");
            return $"Golden example {index} has feature {feature} that {value}. Send every feature as a finite number.";
        }

        return null;
    }

    // Builds the 400 error of a golden-set body that System.Text.Json could not deserialize. Its .NET 10 messages for an
    // empty body and a duplicate property name the reader's internals or the .NET property, so those two get their own.
    private static InferenceError GoldenSetJsonError(JsonException exception)
    {
        const string Expected = "{\"examples\": [{\"label\": 0, \"features\": [...]}]}";
        if (exception.Message.StartsWith("The input does not contain any JSON tokens", StringComparison.Ordinal))
        {
            return new InferenceError("The request body is empty. Send a JSON object with an 'examples' array.", "body", Expected);
        }

        if (exception.Message.StartsWith("Duplicate property ", StringComparison.Ordinal))
        {
            string field = ClientText.Truncate(FieldOfJsonPath(exception.Path));
            string message = $"The request body contains the property {field} twice (property names are matched without regard to case).";
            return new InferenceError(message, field, "each property once per object");
        }

        return new InferenceError(GoldenSetMessage(exception), "body", Expected);
    }

    // Turns System.Text.Json's "$.examples[0].label" into the field form of the other errors, "examples[0].label".
    private static string FieldOfJsonPath(string? path)
    {
        if (path is null || path == "$")
        {
            return "body";
        }

        return path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path;
    }

    // System.Text.Json names the .NET type it could not convert to (System.Int32, or the record that contains the value),
    // which means nothing to a client, so a wrong type gets the JSON type expected at that path instead.
    private static string GoldenSetMessage(JsonException exception)
    {
        string? path = exception.Path;
        string? expected = path switch
        {
            null => null,
            "$" => "an object with 'examples'",
            "$.examples" => "an array of examples",
            _ when path.EndsWith(".label", StringComparison.Ordinal) => "an integer",
            _ when path.EndsWith(".features", StringComparison.Ordinal) => "an array of numbers",
            _ when path.Contains(".features[", StringComparison.Ordinal) => "a finite number",
            _ when path.StartsWith("$.examples[", StringComparison.Ordinal) => "an object with 'label' and 'features'",
            _ => null,
        };
        if (expected is not null && exception.Message.StartsWith("The JSON value could not be converted", StringComparison.Ordinal))
        {
            return $"The golden set is invalid: the value at {path} is not {expected}.";
        }

        return MissingPropertyError(exception.Message) ?? $"The golden set is not valid JSON: {exception.Message}";
    }

    // System.Text.Json reports a missing required property with the .NET type that declares it and without a path, as
    // "JSON deserialization for type 'T' was missing required properties including: 'name'.", so the type is translated.
    private static string? MissingPropertyError(string message)
    {
        const string Including = "was missing required properties including: ";
        int names = message.IndexOf(Including, StringComparison.Ordinal);
        if (names < 0)
        {
            return null;
        }

        string owner;
        if (message.Contains($"'{typeof(GoldenExample).FullName}'", StringComparison.Ordinal))
        {
            owner = "an example";
        }
        else if (message.Contains($"'{typeof(GoldenSet).FullName}'", StringComparison.Ordinal))
        {
            owner = "the top-level object";
        }
        else
        {
            return null;
        }

        string properties = message[(names + Including.Length)..].TrimEnd('.');
        return $"The golden set is invalid: {owner} is missing the required property {properties}.";
    }

    private static IResult Ok(object body)
    {
        ReliabilityMetrics.ManagementRequests.WithLabels("ok").Inc();
        return Results.Json(body);
    }

    private static IResult Error(int statusCode, InferenceError error)
    {
        string outcome = statusCode switch
        {
            StatusCodes.Status404NotFound => "not_found",
            StatusCodes.Status409Conflict => "conflict",
            StatusCodes.Status503ServiceUnavailable => "unavailable",
            _ => "bad_request",
        };
        ReliabilityMetrics.ManagementRequests.WithLabels(outcome).Inc();
        return error.ToResult(statusCode);
    }
}
