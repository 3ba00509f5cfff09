using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ContinualServe.Model.Store;

/// <summary>
/// An operator's golden set: labeled examples a candidate version must keep classifying well before it
/// is promoted. Stored as golden-set.json in the model store directory, written atomically.
/// </summary>
public sealed record GoldenSet
{
    public const string FileName = "golden-set.json";

    // Indented JSON puts every feature on a line of its own, which makes the file about four times the size of the upload.
    private static readonly JsonSerializerOptions CompactJson = new(ModelSpec.JsonOptions) { WriteIndented = false };

    /// <summary>The labeled examples. Required in JSON, so that a misspelled property is not read as an empty set.</summary>
    [JsonRequired]
    public IReadOnlyList<GoldenExample> Examples { get; init; } = [];

    public DateTimeOffset UploadedAt { get; init; }

    /// <summary>Throws <see cref="InvalidDataException"/> naming the first example that does not fit <paramref name="spec"/>.</summary>
    public void Validate(ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);

        // JSON null binds to the non-nullable list and its items, so the uploaded set is checked for it here.
        if (Examples is null)
        {
            throw new InvalidDataException("The golden set's examples array is missing or null. Send {\"examples\": [{\"label\": 0, \"features\": [...]}]}.");
        }

        if (Examples.Count == 0)
        {
            throw new InvalidDataException("The golden set is empty; upload at least one example.");
        }

        for (int index = 0; index < Examples.Count; index++)
        {
            GoldenExample example = Examples[index];
            if (example is null)
            {
                throw new InvalidDataException($"Golden example {index} is null. Send an object with label and features.");
            }

            if (example.Label < 0 || example.Label >= spec.ClassCount)
            {
                throw new InvalidDataException($"Golden example {index} has label {example.Label}; expected 0 to {spec.ClassCount - 1}.");
            }

            if (example.Features is null || example.Features.Length != spec.FeatureCount)
            {
                throw new InvalidDataException($"Golden example {index} has {example.Features?.Length ?? 0} features; expected {spec.FeatureCount}.");
            }

            int notFinite = Array.FindIndex(example.Features, value => !float.IsFinite(value));
            if (notFinite >= 0)
            {
                throw new InvalidDataException(NotFiniteFeatureMessage(index, notFinite, example.Features[notFinite]));
            }
        }
    }

    // The JSON options read numbers in strings, so the strings "NaN", "Infinity" and "-Infinity" become those values.
    // A NaN can only come from such a string. An infinity comes from such a string or from a number beyond FP32.
    private static string NotFiniteFeatureMessage(int example, int feature, float value)
    {
        if (float.IsNaN(value))
        {
            return $"Golden example {example} has feature {feature} that is NaN (the string \"NaN\"), which is not a finite number. Replace it with a JSON number.";
        }

        return string.Create(
            CultureInfo.InvariantCulture,
            $"Golden example {example} has feature {feature} that is infinite (the string \"Infinity\" or \"-Infinity\", or a number beyond the FP32 range, whose largest magnitude is {float.MaxValue}), which is not a finite number. Replace it with a JSON number in that range.");
    }

    /// <summary>Writes the set to <paramref name="directory"/> atomically (temporary file, fsync, rename).</summary>
    /// <exception cref="DirectoryNotFoundException"><paramref name="directory"/> does not exist. It is not created.</exception>
    public void Save(string directory) =>
        FileSync.WriteAtomically(directory, FileName, JsonSerializer.SerializeToUtf8Bytes(this, CompactJson));

    /// <summary>
    /// Writes the set to the root of <paramref name="store"/> as <see cref="Save(string)"/> does, after checking that the
    /// root is still the directory that the store opened.
    /// </summary>
    /// <exception cref="StoreDirectoryChangedException">The store's directory was removed, renamed or replaced. Nothing is written.</exception>
    public void Save(ModelStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        store.EnsureRootDirectoryUnchanged();
        Save(store.RootDirectory);
    }

    /// <summary>
    /// Removes the golden set from the root of <paramref name="store"/> durably, after checking that the root is still
    /// the directory that the store opened. Returns false when no golden set was uploaded.
    /// </summary>
    /// <exception cref="StoreDirectoryChangedException">The store's directory was removed, renamed or replaced. Nothing is removed.</exception>
    /// <exception cref="IOException">A directory is at the golden set's path. It is not removed.</exception>
    public static bool Delete(ModelStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        store.EnsureRootDirectoryUnchanged();
        string path = Path.Combine(store.RootDirectory, FileName);
        if (Directory.Exists(path))
        {
            throw new IOException($"{path} is a directory, not a golden set. Remove it by hand; it is not removed with its contents.");
        }

        if (!File.Exists(path))
        {
            return false;
        }

        File.Delete(path);
        FileSync.FlushDirectory(store.RootDirectory);
        return true;
    }

    /// <summary>Reads the set from <paramref name="directory"/>, or returns null when none was uploaded.</summary>
    /// <exception cref="IOException">A directory is at the golden set's path, which the learner cannot read either.</exception>
    public static GoldenSet? TryLoad(string directory)
    {
        string path = Path.Combine(directory, FileName);
        if (Directory.Exists(path))
        {
            throw new IOException($"{path} is a directory, not a golden set.");
        }

        if (!File.Exists(path))
        {
            return null;
        }

        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Parses the content of a stored golden set, read from <paramref name="path"/>.</summary>
    public static GoldenSet Parse(ReadOnlySpan<byte> content, string path) =>
        JsonSerializer.Deserialize<GoldenSet>(content, ModelSpec.JsonOptions)
            ?? throw new InvalidDataException($"{path} is empty.");
}

/// <summary>
/// One labeled golden example, with raw feature values as in inference requests. The label is required, because a
/// missing one would otherwise read as class 0.
/// </summary>
public sealed record GoldenExample([property: JsonRequired] int Label, float[] Features);
