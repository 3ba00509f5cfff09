using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;

namespace ContinualServe.Server.Management;

// Schema-only types for the OpenAPI document. The management handlers return anonymous objects, so these
// records are never serialized. Each one mirrors the JSON that a handler writes or reads.

/// <summary>Body of GET /manage/v1/versions.</summary>
internal sealed record VersionListResponse
{
    [Description("The live version, or null before one is loaded.")]
    public required long? Live { get; init; }

    [Description("The pinned version, or null when the server follows the newest version.")]
    public required long? Pinned { get; init; }

    [Description("Present only when the pin file cannot be read (DELETE /manage/v1/pin removes the file), or when the pinned version is missing or corrupt in this server's store and therefore not live.")]
    public string PinError { get; init; } = "";

    [Description("Every version in the model store, oldest first.")]
    public required IReadOnlyList<VersionSummary> Versions { get; init; }
}

/// <summary>One version in the model store. The manifest fields are null when the version is not intact.</summary>
internal sealed record VersionSummary
{
    public required long Version { get; init; }

    [Description("False when the version cannot be loaded, for example when its weights do not match their SHA-256.")]
    public required bool Intact { get; init; }

    public required DateTimeOffset? CreatedAt { get; init; }

    public required long? ParentVersion { get; init; }

    public required long? ExamplesTrained { get; init; }

    [Description("Average accuracy over the tasks seen so far, from the manifest. Null when the version was not evaluated.")]
    public required double? AverageAccuracy { get; init; }

    public required string? WeightsSha256 { get; init; }
}

/// <summary>Body of promote, rollback and DELETE /manage/v1/pin: the live and pinned versions after the change.</summary>
internal sealed record PinStateResponse
{
    [Description("The live version, or null when none is loaded.")]
    public required long? Live { get; init; }

    [Description("The pinned version. Null after DELETE /manage/v1/pin.")]
    public required long? Pinned { get; init; }
}

/// <summary>Body of GET /manage/v1/learning.</summary>
internal sealed record LearningStateResponse
{
    [Description("True while the pause marker is in the model store, which every learner on that store follows.")]
    public required bool Paused { get; init; }

    [Description("The state of the learner in this process, or null when this process runs no learner.")]
    public required LearnerState? Learner { get; init; }
}

/// <summary>Body of POST /manage/v1/learning/pause and /resume: whether the pause marker is now in the model store.</summary>
internal sealed record LearningPauseResponse
{
    public required bool Paused { get; init; }
}

/// <summary>Body of GET and PUT /manage/v1/golden-set.</summary>
internal sealed record GoldenSetSummaryResponse
{
    [Description("Number of examples in the golden set.")]
    public required int Examples { get; init; }

    [Description("Time of the upload. For a golden-set file written by hand without uploadedAt, its last write time.")]
    public required DateTimeOffset UploadedAt { get; init; }
}

/// <summary>Body of DELETE /manage/v1/golden-set.</summary>
internal sealed record GoldenSetDeleteResponse
{
    [Description("True: the golden set was removed, and candidates are promoted without a golden-set floor.")]
    public required bool Deleted { get; init; }
}

/// <summary>Body of PUT /manage/v1/golden-set. Property names are matched case-insensitively.</summary>
internal sealed record GoldenSetUpload
{
    [MinLength(1)]
    [Description("At least one example. The server sets the upload time and ignores other properties.")]
    public required IReadOnlyList<LabeledExample> Examples { get; init; }
}

/// <summary>
/// One labeled example of the golden set. The upload is read with the web defaults of System.Text.Json, which
/// also accept numbers in strings.
/// </summary>
[JsonNumberHandling(JsonNumberHandling.AllowReadingFromString)]
internal sealed record LabeledExample
{
    [Description("Class index, from 0 to the number of classes minus 1.")]
    public required int Label { get; init; }

    [Description("Raw feature values as in inference requests, as many as the model's input has, all finite.")]
    public required IReadOnlyList<float> Features { get; init; }
}
