using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ContinualServe.Model;

/// <summary>
/// Architecture, input shape and labels of a model: what the server and the learner must agree on.
/// Serialized as JSON next to every version's weights.
/// </summary>
public sealed record ModelSpec
{
    /// <summary>Version of this JSON schema; bumped when a field changes meaning.</summary>
    public const int CurrentSchemaVersion = 1;

    public int SchemaVersion { get; init; } = CurrentSchemaVersion;

    [Required]
    [RegularExpression("^[a-z0-9][a-z0-9-]{0,62}$")]
    public string Name { get; init; } = "fashion-mnist";

    /// <summary>Architecture name understood by <see cref="ModelFactory"/>: "mlp" or "cnn".</summary>
    public string Architecture { get; init; } = "mlp";

    /// <summary>Shape of one example, without the batch dimension, e.g. [784] or [1, 28, 28].</summary>
    public IReadOnlyList<int> InputShape { get; init; } = [784];

    /// <summary>Class names; the model's output has one logit per label, in this order.</summary>
    public IReadOnlyList<string> Labels { get; init; } = FashionMnistLabels;

    /// <summary>Hidden layer widths of the MLP, or channel counts of the CNN's convolutions.</summary>
    public IReadOnlyList<int> HiddenSizes { get; init; } = [256, 256];

    /// <summary>
    /// Factor applied to raw inputs inside the model, so that clients and records send raw values
    /// (pixels 0–255) and every consumer of the spec normalizes them the same way.
    /// </summary>
    public float InputScale { get; init; } = 1f / 255f;

    [JsonIgnore]
    public int FeatureCount => InputShape.Aggregate(1, (product, size) => product * size);

    [JsonIgnore]
    public int ClassCount => Labels.Count;

    public static IReadOnlyList<string> FashionMnistLabels { get; } =
    [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ];

    public static JsonSerializerOptions JsonOptions { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
    };

    /// <summary>Throws <see cref="InvalidDataException"/> when the spec cannot build a model.</summary>
    public void Validate()
    {
        if (SchemaVersion != CurrentSchemaVersion)
        {
            throw new InvalidDataException(
                $"Model spec schema version {SchemaVersion} is not supported; expected {CurrentSchemaVersion}.");
        }

        if (InputShape.Count == 0 || InputShape.Any(size => size <= 0))
        {
            throw new InvalidDataException(
                $"Model spec input shape [{string.Join(", ", InputShape)}] is invalid; every dimension must be positive.");
        }

        if (Labels.Count < 2)
        {
            throw new InvalidDataException($"Model spec has {Labels.Count} labels; at least 2 are required.");
        }

        if (HiddenSizes.Any(size => size <= 0))
        {
            throw new InvalidDataException("Model spec hidden sizes must all be positive.");
        }

        if (!float.IsFinite(InputScale) || InputScale <= 0)
        {
            throw new InvalidDataException($"Model spec input scale {InputScale} must be a positive finite number.");
        }

        _ = ModelFactory.EnsureKnownArchitecture(Architecture);
    }

    /// <summary>Returns the architecture and sizes for messages, such as "mlp, input shape [784], hidden sizes [256, 256], 10 labels".</summary>
    internal string DescribeModel() =>
        $"{Architecture}, input shape [{string.Join(", ", InputShape)}], hidden sizes [{string.Join(", ", HiddenSizes)}], {Labels.Count} labels";

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public static ModelSpec FromJson(string json)
    {
        ModelSpec spec = JsonSerializer.Deserialize<ModelSpec>(json, JsonOptions)
            ?? throw new InvalidDataException("Model spec JSON is empty.");
        spec.Validate();
        return spec;
    }
}
