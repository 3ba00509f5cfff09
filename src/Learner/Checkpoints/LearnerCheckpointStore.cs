using System.Globalization;
using System.Text.Json;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner.Checkpoints;

/// <summary>
/// A directory of learner checkpoints, one sub-directory each (c000000000001, ...). A checkpoint is written
/// into a temporary directory, every file is flushed to disk, and the directory is renamed into place, so a
/// crash leaves either the complete new checkpoint or only the older ones. Files are checked against their
/// SHA-256 before use; a corrupt checkpoint is skipped in favour of the one before it.
/// </summary>
public sealed partial class LearnerCheckpointStore
{
    private const string Prefix = "c";
    private const string TemporaryPrefix = ".tmp-";

    private readonly ILogger logger;
    private readonly int retained;
    private readonly DirectoryIdentity rootIdentity;

    public LearnerCheckpointStore(string rootDirectory, int retainedCheckpoints, ILogger logger)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(rootDirectory);
        ArgumentOutOfRangeException.ThrowIfLessThan(retainedCheckpoints, 1);
        RootDirectory = Path.GetFullPath(rootDirectory);
        retained = retainedCheckpoints;
        this.logger = logger;
        Directory.CreateDirectory(RootDirectory);
        rootIdentity = DirectoryIdentity.Record(RootDirectory, "learner checkpoint directory");
        foreach (string abandoned in Directory.EnumerateDirectories(RootDirectory, TemporaryPrefix + "*"))
        {
            Directory.Delete(abandoned, recursive: true);
        }
    }

    public string RootDirectory { get; }

    /// <summary>Throws when <see cref="RootDirectory"/> is no longer the directory opened at construction.</summary>
    /// <exception cref="StoreDirectoryChangedException">The directory was removed, renamed or replaced.</exception>
    public void EnsureRootDirectoryUnchanged() => rootIdentity.EnsureUnchanged();

    /// <summary>
    /// Writes a checkpoint: <paramref name="writeFiles"/> creates the data files in the directory it is given,
    /// then their checksums and <paramref name="metadata"/> are stored and the directory is renamed into place.
    /// </summary>
    public LearnerCheckpoint Save(LearnerCheckpoint metadata, Action<string> writeFiles) =>
        Complete(Prepare(writeFiles), metadata, writeFiles: null);

    /// <summary>
    /// Creates a temporary directory and lets <paramref name="writeFiles"/> create data files in it, without
    /// flushing them to disk. Pass the returned directory to <see cref="Complete"/> or <see cref="Abandon"/>.
    /// </summary>
    /// <exception cref="StoreDirectoryChangedException">
    /// <see cref="RootDirectory"/> is no longer the directory this instance opened: it was removed, renamed or replaced.
    /// </exception>
    public string Prepare(Action<string> writeFiles)
    {
        ArgumentNullException.ThrowIfNull(writeFiles);
        rootIdentity.EnsureUnchanged();
        string temporary = Path.Combine(RootDirectory, TemporaryPrefix + Guid.NewGuid().ToString("N"));
        FileSync.CreateDirectoryInExistingParent(temporary);
        try
        {
            writeFiles(temporary);
            return temporary;
        }
        catch
        {
            Abandon(temporary);
            throw;
        }
    }

    /// <summary>
    /// Finishes a checkpoint begun by <see cref="Prepare"/>: <paramref name="writeFiles"/>, when given, adds data
    /// files, then every file is flushed to disk, the checksums and <paramref name="metadata"/> are stored, and
    /// the directory is renamed into place. Deletes the directory if any step fails, such as a
    /// <see cref="StoreDirectoryChangedException"/> when <see cref="RootDirectory"/> was replaced after it was opened.
    /// </summary>
    public LearnerCheckpoint Complete(string prepared, LearnerCheckpoint metadata, Action<string>? writeFiles)
    {
        ArgumentNullException.ThrowIfNull(prepared);
        ArgumentNullException.ThrowIfNull(metadata);
        try
        {
            writeFiles?.Invoke(prepared);
            List<long> existing = ListSequences();
            long sequence = (existing.Count == 0 ? 0 : existing[^1]) + 1;
            var checksums = new SortedDictionary<string, string>(StringComparer.Ordinal);
            foreach (string file in Directory.EnumerateFiles(prepared))
            {
                FileSync.FlushFile(file);
                checksums[Path.GetFileName(file)] = ModelStore.ComputeSha256(file);
            }

            LearnerCheckpoint complete = metadata with
            {
                Sequence = sequence,
                CreatedAt = DateTimeOffset.UtcNow,
                FileSha256 = checksums,
            };
            FileSync.WriteAllBytesDurably(
                Path.Combine(prepared, LearnerCheckpoint.MetadataFileName),
                JsonSerializer.SerializeToUtf8Bytes(complete, LearnerCheckpoint.JsonOptions));
            FileSync.FlushDirectory(prepared);
            rootIdentity.EnsureUnchanged();
            Directory.Move(prepared, SequenceDirectory(sequence));
            FileSync.FlushDirectory(RootDirectory);
            DeleteOlderThan(sequence);
            return complete;
        }
        catch
        {
            Abandon(prepared);
            throw;
        }
    }

    /// <summary>Deletes a directory returned by <see cref="Prepare"/> that will not be completed.</summary>
    public static void Abandon(string prepared)
    {
        ArgumentNullException.ThrowIfNull(prepared);
        if (Directory.Exists(prepared))
        {
            Directory.Delete(prepared, recursive: true);
        }
    }

    /// <summary>
    /// Returns the path of the file <paramref name="name"/> in <paramref name="checkpoint"/>, written by <see cref="Save"/>
    /// or <see cref="Complete"/>, after checking it against the SHA-256 that the checkpoint records.
    /// </summary>
    /// <exception cref="InvalidDataException">The checkpoint records no such file, or the file differs from what was written.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public string VerifiedFile(LearnerCheckpoint checkpoint, string name)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        string path = Path.Combine(SequenceDirectory(checkpoint.Sequence), name);
        if (!checkpoint.FileSha256.TryGetValue(name, out string? expected))
        {
            throw new InvalidDataException($"Learner checkpoint {checkpoint.Sequence} records no file {name}.");
        }

        string actual = ModelStore.ComputeSha256(path);
        if (!string.Equals(actual, expected, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"SHA-256 of {path} is {actual} but checkpoint.json records {expected}: the file changed after it was written.");
        }

        return path;
    }

    /// <summary>Returns the newest checkpoint whose metadata parses and whose files match their SHA-256, or null.</summary>
    public (LearnerCheckpoint Checkpoint, string Directory)? TryLoadLatest()
    {
        foreach (long sequence in Enumerable.Reverse(ListSequences()))
        {
            string directory = SequenceDirectory(sequence);
            try
            {
                return (Verify(directory), directory);
            }
            catch (Exception exception) when (exception is IOException or InvalidDataException or JsonException)
            {
                LogCorruptCheckpoint(logger, exception, directory);
            }
        }

        return null;
    }

    /// <summary>
    /// Returns the newest intact checkpoint written with model version <paramref name="version"/>, or null when the
    /// retained checkpoints include none. Corrupt checkpoints are logged and skipped.
    /// </summary>
    public (LearnerCheckpoint Checkpoint, string Directory)? TryLoadForVersion(long version)
    {
        foreach (long sequence in Enumerable.Reverse(ListSequences()))
        {
            string directory = SequenceDirectory(sequence);
            try
            {
                LearnerCheckpoint checkpoint = Verify(directory);
                if (checkpoint.ModelVersion == version)
                {
                    return (checkpoint, directory);
                }
            }
            catch (Exception exception) when (exception is IOException or InvalidDataException or JsonException)
            {
                LogCorruptCheckpoint(logger, exception, directory);
            }
        }

        return null;
    }

    private static LearnerCheckpoint Verify(string directory)
    {
        LearnerCheckpoint checkpoint = JsonSerializer.Deserialize<LearnerCheckpoint>(
                File.ReadAllBytes(Path.Combine(directory, LearnerCheckpoint.MetadataFileName)), LearnerCheckpoint.JsonOptions)
            ?? throw new InvalidDataException("checkpoint.json is empty.");
        if (checkpoint.FileSha256.Count == 0)
        {
            throw new InvalidDataException("checkpoint.json lists no data files.");
        }

        foreach ((string name, string expected) in checkpoint.FileSha256)
        {
            string path = Path.Combine(directory, Path.GetFileName(name));
            string actual = ModelStore.ComputeSha256(path);
            if (!string.Equals(actual, expected, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"SHA-256 of {path} is {actual} but checkpoint.json records {expected}.");
            }
        }

        return checkpoint;
    }

    private List<long> ListSequences() =>
        Directory.EnumerateDirectories(RootDirectory, Prefix + "*")
            .Select(path => ParseSequence(Path.GetFileName(path)))
            .Where(sequence => sequence > 0)
            .Order()
            .ToList();

    /// <summary>
    /// Deletes the checkpoints that retention no longer keeps. It keeps the newest <c>retained</c> checkpoints, and the
    /// newest checkpoint of each of the <c>retained</c> model versions checkpointed most recently. Rejected rounds write
    /// checkpoints of the live version, so without the second rule they would push out the checkpoints of older
    /// versions that a pin under the analytic strategy needs. At most twice <c>retained</c> checkpoints stay.
    /// </summary>
    private void DeleteOlderThan(long newest)
    {
        List<long> sequences = ListSequences();
        var retainedSequences = new HashSet<long>(sequences.Where(sequence => sequence > newest - retained));
        var versions = new HashSet<long>();
        foreach (long sequence in Enumerable.Reverse(sequences))
        {
            if (versions.Count == retained)
            {
                break;
            }

            // A checkpoint whose metadata cannot be read is kept only by the first rule.
            if (TryReadModelVersion(sequence) is long version && versions.Add(version))
            {
                retainedSequences.Add(sequence);
            }
        }

        foreach (long sequence in sequences.Where(sequence => !retainedSequences.Contains(sequence)))
        {
            try
            {
                Directory.Delete(SequenceDirectory(sequence), recursive: true);
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
            {
                // The new checkpoint is durable, so a denied deletion is only logged. Thrown, it would stop the learner at every round.
                LogDeleteFailed(logger, exception, SequenceDirectory(sequence));
            }
        }
    }

    private long? TryReadModelVersion(long sequence)
    {
        try
        {
            byte[] metadata = File.ReadAllBytes(Path.Combine(SequenceDirectory(sequence), LearnerCheckpoint.MetadataFileName));
            return JsonSerializer.Deserialize<LearnerCheckpoint>(metadata, LearnerCheckpoint.JsonOptions)?.ModelVersion;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    private string SequenceDirectory(long sequence) =>
        Path.Combine(RootDirectory, Prefix + sequence.ToString("D12", CultureInfo.InvariantCulture));

    private static long ParseSequence(string name) =>
        name.StartsWith(Prefix, StringComparison.Ordinal)
        && long.TryParse(name.AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out long sequence)
            ? sequence
            : -1;

    [LoggerMessage(EventId = 248, Level = LogLevel.Error, Message = "Learner checkpoint {Directory} is corrupt or incomplete; trying an older one")]
    private static partial void LogCorruptCheckpoint(ILogger logger, Exception exception, string directory);

    [LoggerMessage(EventId = 249, Level = LogLevel.Warning, Message = "Could not delete old learner checkpoint {Directory}")]
    private static partial void LogDeleteFailed(ILogger logger, Exception exception, string directory);
}
