using System.Globalization;
using System.Text.Json;
using ContinualServe.Model.Store;

namespace ContinualServe.Learner.Publishing;

/// <summary>
/// The record the learner writes to the version topic for each promoted version. The key is the model
/// name, so log compaction keeps the newest announcement per model and a replica that starts late
/// still finds it. Replicas download the files from <see cref="StoreUrl"/> and accept the weights only
/// when their SHA-256 equals <see cref="WeightsSha256"/>.
/// </summary>
public sealed record ModelVersionAnnouncement
{
    public string ModelName { get; init; } = "";

    public long Version { get; init; }

    /// <summary>Lower-case hex SHA-256 of weights.bin.</summary>
    public string WeightsSha256 { get; init; } = "";

    public long WeightsBytes { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>Base URL of the learner's read-only model store; empty when the learner has none configured.</summary>
    public string StoreUrl { get; init; } = "";

    /// <summary>
    /// Highest version number that the learner's store has saved, corrupt and deleted versions included. It is above
    /// <see cref="Version"/> when the store's newer versions are no longer intact, and 0 from learners that predate
    /// the field.
    /// </summary>
    public long HighestSavedVersion { get; init; }

    /// <summary>
    /// Describes <paramref name="version"/> for replicas. <paramref name="highestSavedVersion"/> is the store's highest
    /// version number; a smaller value, such as the default 0, announces the version's own number.
    /// </summary>
    public static ModelVersionAnnouncement From(ModelVersion version, string storeUrl, long highestSavedVersion = 0)
    {
        ArgumentNullException.ThrowIfNull(version);
        return new ModelVersionAnnouncement
        {
            ModelName = version.Spec.Name,
            Version = version.Number,
            WeightsSha256 = version.Manifest.WeightsSha256,
            WeightsBytes = version.Manifest.WeightsBytes,
            CreatedAt = version.Manifest.CreatedAt,
            StoreUrl = storeUrl,
            HighestSavedVersion = Math.Max(version.Number, highestSavedVersion),
        };
    }

    public byte[] ToJsonBytes() => JsonSerializer.SerializeToUtf8Bytes(this, ModelManifest.JsonOptions);

    /// <summary>Decodes a record value; returns null with an error for anything that is not a usable announcement.</summary>
    public static ModelVersionAnnouncement? TryParse(byte[]? value, out string error)
    {
        error = "";
        if (value is null || value.Length == 0)
        {
            error = "the record has no value";
            return null;
        }

        ModelVersionAnnouncement? announcement;
        try
        {
            announcement = JsonSerializer.Deserialize<ModelVersionAnnouncement>(value, ModelManifest.JsonOptions);
        }
        catch (JsonException exception)
        {
            error = IsWellFormedJson(value)
                ? IntegerOutOfRangeError(value, exception.Path) ?? "the value is JSON, but a field has the wrong type: " + exception.Message
                : "the value is not valid JSON: " + exception.Message;
            return null;
        }

        if (announcement is null)
        {
            error = "the value is JSON null";
            return null;
        }

        return announcement.IsValid(out error) ? announcement : null;
    }

    /// <summary>
    /// Checks every field a replica acts on: a positive version, a SHA-256 of 64 lower-case hex digits, a weights size
    /// and a highest saved version of 0 or more, a store URL and a model name. Learners that predate the size or the
    /// highest saved version announce 0. The store URL is
    /// empty or an absolute http or https URL, because the learner's Distribution:StoreUrl accepts no other.
    /// </summary>
    internal bool IsValid(out string error)
    {
        error = "";
        if (Version <= 0)
        {
            error = "version is missing or not positive";
            return false;
        }

        // JSON null reaches a property that the compiler takes for non-null, so a missing hash is checked for first.
        if (string.IsNullOrEmpty(WeightsSha256))
        {
            error = "weightsSha256 is missing";
            return false;
        }

        if (WeightsSha256.Length != 64 || !WeightsSha256.All(char.IsAsciiHexDigitLower))
        {
            error = "weightsSha256 is not 64 lower-case hex digits";
            return false;
        }

        if (WeightsBytes < 0)
        {
            error = $"weightsBytes is negative ({WeightsBytes})";
            return false;
        }

        if (HighestSavedVersion < 0)
        {
            error = $"highestSavedVersion is negative ({HighestSavedVersion})";
            return false;
        }

        if (!IsEmptyOrHttpUrl(StoreUrl))
        {
            error = $"storeUrl '{StoreUrl}' is not an absolute http or https URL";
            return false;
        }

        // Replicas log the store URL, so credentials in it would reach the logs. The store API takes a bearer token.
        if (!string.IsNullOrEmpty(StoreUrl) && new Uri(StoreUrl).UserInfo.Length > 0)
        {
            error = "storeUrl contains a user name or password, which replicas would log; the store API takes a bearer token instead";
            return false;
        }

        if (string.IsNullOrEmpty(ModelName))
        {
            error = "modelName is missing";
            return false;
        }

        return true;
    }

    private static bool IsWellFormedJson(byte[] value)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(value);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    // Returns the error for version or weightsBytes given as a whole number beyond the 64-bit range, such as 1e19. Returns
    // null when the JSON path of the failed field names another field, or the value has another problem.
    private static string? IntegerOutOfRangeError(byte[] value, string? path)
    {
        string[] integerFields =
        [
            JsonNamingPolicy.CamelCase.ConvertName(nameof(Version)),
            JsonNamingPolicy.CamelCase.ConvertName(nameof(WeightsBytes)),
        ];
        string? name = path is not null && path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : null;
        string? field = integerFields.FirstOrDefault(candidate => string.Equals(candidate, name, StringComparison.OrdinalIgnoreCase));
        if (field is null)
        {
            return null;
        }

        using JsonDocument document = JsonDocument.Parse(value);
        foreach (JsonProperty property in document.RootElement.EnumerateObject())
        {
            if (!string.Equals(property.Name, field, StringComparison.OrdinalIgnoreCase) || property.Value.ValueKind != JsonValueKind.Number)
            {
                continue;
            }

            if (!property.Value.TryGetInt64(out _) && property.Value.TryGetDouble(out double number) && number == Math.Floor(number))
            {
                return string.Create(
                    CultureInfo.InvariantCulture,
                    $"{field} is {property.Value.GetRawText()}, outside the 64-bit integer range ({long.MinValue} to {long.MaxValue})");
            }
        }

        return null;
    }

    private static bool IsEmptyOrHttpUrl(string? url)
    {
        if (string.IsNullOrEmpty(url))
        {
            return true;
        }

        return Uri.TryCreate(url, UriKind.Absolute, out Uri? uri)
            && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);
    }
}
