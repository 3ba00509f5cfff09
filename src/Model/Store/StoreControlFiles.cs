using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace ContinualServe.Model.Store;

/// <summary>
/// Operator decisions kept as small files in the model store directory, so that every server and the
/// learner sharing the store see them and they survive restarts: a pinned version (servers serve it instead
/// of the newest) and a learning pause (the learner stops consuming). Written atomically by rename.
/// </summary>
public static class StoreControlFiles
{
    public const string PinnedVersionFileName = "pinned-version";
    public const string LearningPausedFileName = "learning-paused";

    /// <summary>Returns the pinned version number, or null when servers follow the newest version.</summary>
    public static long? ReadPinnedVersion(string storeDirectory)
    {
        string path = Path.Combine(storeDirectory, PinnedVersionFileName);
        if (!File.Exists(path))
        {
            return null;
        }

        string text = File.ReadAllText(path).Trim();
        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long version) && version > 0
            ? version
            : throw new InvalidDataException($"{path} contains '{text}'; expected a positive version number.");
    }

    /// <summary>
    /// Reads the pinned version as <see cref="ReadPinnedVersion"/> does, but returns false with the problem, in place of
    /// throwing, when the file cannot be read or does not contain a positive version number.
    /// </summary>
    public static bool TryReadPinnedVersion(string storeDirectory, out long? version, [NotNullWhen(false)] out string? problem)
    {
        try
        {
            version = ReadPinnedVersion(storeDirectory);
            problem = null;
            return true;
        }
        catch (Exception exception) when (exception is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            version = null;
            problem = exception.Message;
            return false;
        }
    }

    /// <summary>Pins <paramref name="version"/> in the store directory <paramref name="storeDirectory"/>.</summary>
    /// <exception cref="DirectoryNotFoundException"><paramref name="storeDirectory"/> does not exist. It is not created.</exception>
    public static void WritePinnedVersion(string storeDirectory, long version)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(version, 1);
        WriteAtomically(storeDirectory, PinnedVersionFileName, version.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Pins <paramref name="version"/> in <paramref name="store"/>, after checking that its root is still the directory
    /// that the store opened.
    /// </summary>
    /// <exception cref="StoreDirectoryChangedException">The store's directory was removed, renamed or replaced. Nothing is written.</exception>
    public static void WritePinnedVersion(ModelStore store, long version)
    {
        ArgumentNullException.ThrowIfNull(store);
        store.EnsureRootDirectoryUnchanged();
        WritePinnedVersion(store.RootDirectory, version);
    }

    public static void ClearPinnedVersion(string storeDirectory) => Delete(storeDirectory, PinnedVersionFileName);

    /// <summary>
    /// Removes the pin from <paramref name="store"/>, after checking that its root is still the directory that the store
    /// opened.
    /// </summary>
    /// <exception cref="StoreDirectoryChangedException">The store's directory was removed, renamed or replaced. Nothing is removed.</exception>
    public static void ClearPinnedVersion(ModelStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        store.EnsureRootDirectoryUnchanged();
        ClearPinnedVersion(store.RootDirectory);
    }

    public static bool IsLearningPaused(string storeDirectory) =>
        File.Exists(Path.Combine(storeDirectory, LearningPausedFileName));

    /// <summary>Writes or removes the pause marker in the store directory <paramref name="storeDirectory"/>.</summary>
    /// <exception cref="DirectoryNotFoundException"><paramref name="storeDirectory"/> does not exist. It is not created.</exception>
    public static void SetLearningPaused(string storeDirectory, bool paused)
    {
        if (paused)
        {
            WriteAtomically(storeDirectory, LearningPausedFileName, DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
        }
        else
        {
            Delete(storeDirectory, LearningPausedFileName);
        }
    }

    /// <summary>
    /// Writes or removes the pause marker in <paramref name="store"/>, after checking that its root is still the directory
    /// that the store opened.
    /// </summary>
    /// <exception cref="StoreDirectoryChangedException">The store's directory was removed, renamed or replaced. Nothing is changed.</exception>
    public static void SetLearningPaused(ModelStore store, bool paused)
    {
        ArgumentNullException.ThrowIfNull(store);
        store.EnsureRootDirectoryUnchanged();
        SetLearningPaused(store.RootDirectory, paused);
    }

    private static void WriteAtomically(string directory, string name, string content) =>
        FileSync.WriteAtomically(directory, name, System.Text.Encoding.UTF8.GetBytes(content));

    private static void Delete(string directory, string name)
    {
        File.Delete(Path.Combine(directory, name));
        FileSync.FlushDirectory(directory);
    }
}
