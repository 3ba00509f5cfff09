using System.Text.Json;
using ContinualServe.Model.Store;

namespace ContinualServe.Learner.Publishing;

/// <summary>
/// The record the learner writes to the version topic when the operator pins a version or removes the pin.
/// Its key is the model name plus <see cref="KeySuffix"/>, so log compaction keeps the newest pin record beside
/// the newest version announcement, and a replica that starts late learns both. While <see cref="Pinned"/> is set,
/// replicas serve that version instead of the newest one.
/// </summary>
public sealed record ModelPinAnnouncement
{
    /// <summary>Appended to the model name to form the record key of pin records.</summary>
    public const string KeySuffix = "/pin";

    public string ModelName { get; init; } = "";

    /// <summary>The pinned version with what a replica needs to download and verify it, or null when nothing is pinned.</summary>
    public ModelVersionAnnouncement? Pinned { get; init; }

    /// <summary>When the learner saw the pin change in its model store.</summary>
    public DateTimeOffset ChangedAt { get; init; }

    public static bool IsPinKey(string? key) => key is not null && key.EndsWith(KeySuffix, StringComparison.Ordinal);

    /// <summary>A record that pins <paramref name="version"/>, or removes the pin of <paramref name="modelName"/> when it is null.</summary>
    public static ModelPinAnnouncement From(string modelName, ModelVersion? version, string storeUrl) => new()
    {
        ModelName = modelName,
        Pinned = version is null ? null : ModelVersionAnnouncement.From(version, storeUrl),
        ChangedAt = DateTimeOffset.UtcNow,
    };

    public byte[] ToJsonBytes() => JsonSerializer.SerializeToUtf8Bytes(this, ModelManifest.JsonOptions);

    /// <summary>Decodes a pin record's value. Returns null with an error for anything that is not a usable pin record.</summary>
    public static ModelPinAnnouncement? TryParse(byte[]? value, out string error)
    {
        error = "";
        if (value is null || value.Length == 0)
        {
            error = "the pin record has no value";
            return null;
        }

        ModelPinAnnouncement? pin;
        try
        {
            pin = JsonSerializer.Deserialize<ModelPinAnnouncement>(value, ModelManifest.JsonOptions);
        }
        catch (JsonException exception)
        {
            error = "the pin record is not valid JSON: " + exception.Message;
            return null;
        }

        if (pin is null || string.IsNullOrEmpty(pin.ModelName))
        {
            error = "modelName is missing";
            return null;
        }

        if (pin.Pinned is not null && !pin.Pinned.IsValid(out string pinnedError))
        {
            error = "pinned: " + pinnedError;
            return null;
        }

        if (pin.Pinned is not null && !string.Equals(pin.Pinned.ModelName, pin.ModelName, StringComparison.Ordinal))
        {
            error = $"pinned.modelName '{pin.Pinned.ModelName}' differs from modelName '{pin.ModelName}'";
            return null;
        }

        return pin;
    }
}
