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

    public static void WritePinnedVersion(string storeDirectory, long version)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(version, 1);
        WriteAtomically(storeDirectory, PinnedVersionFileName, version.ToString(CultureInfo.InvariantCulture));
    }

    public static void ClearPinnedVersion(string storeDirectory) => Delete(storeDirectory, PinnedVersionFileName);

    public static bool IsLearningPaused(string storeDirectory) =>
        File.Exists(Path.Combine(storeDirectory, LearningPausedFileName));

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

    private static void WriteAtomically(string directory, string name, string content) =>
        FileSync.WriteAtomically(directory, name, System.Text.Encoding.UTF8.GetBytes(content));

    private static void Delete(string directory, string name)
    {
        File.Delete(Path.Combine(directory, name));
        FileSync.FlushDirectory(directory);
    }
}
