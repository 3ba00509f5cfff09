using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Model.Store;

/// <summary>
/// A directory of model versions, one sub-directory per version (v00000001, v00000002, ...).
/// A version is written into a temporary directory, flushed to disk and renamed into place, so a
/// reader sees either a complete version or none. On every load the weights are checked against the manifest's
/// SHA-256 and against the tensor names, data types and shapes of the model that the version's spec describes. A
/// version that fails a check is corrupt: it is skipped, never served.
/// </summary>
public sealed partial class ModelStore
{
    public const string WeightsFileName = "weights.bin";
    public const string SpecFileName = "spec.json";
    public const string ManifestFileName = "manifest.json";
    private const string VersionPrefix = "v";
    private const string TemporaryPrefix = ".tmp-";
    private const string VersionLockFileName = ".versions.lock";
    private const string HighestVersionFileName = ".highest-version";

    // Writing a control file takes milliseconds, and a version's files are written back to back. So a temporary file or
    // version directory that nothing changed for this long was abandoned.
    private static readonly TimeSpan AbandonedWriteAge = TimeSpan.FromMinutes(1);

    private readonly ILogger logger;
    private readonly Lock writeLock = new();
    private readonly DirectoryIdentity rootIdentity;

    // The problem last logged for each corrupt version. Servers load the newest version on every store poll, so each
    // problem is logged once, and again only after the version loaded or its problem changed.
    private readonly ConcurrentDictionary<long, string> reportedCorruptVersions = new();

    // Versions found corrupt, with the state of their files then. A server polls the store every second, and hashing the
    // same corrupt weights on every poll would cost a large model's read each time. A version is checked again once a
    // file of it changes, or after CorruptVersionRecheckAge, which also covers a file restored with its old times and a
    // file rewritten within the file system's timestamp granularity.
    private readonly ConcurrentDictionary<long, CorruptVersion> corruptVersions = new();

    private long weightsHashed;

    // The last error that kept retention from taking the version lock, so that each distinct error is logged once.
    // Only saves, which hold writeLock, read or write it.
    private string? retentionLockProblem;

    public ModelStore(string rootDirectory, int retainedVersions = 20, ILogger<ModelStore>? logger = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(rootDirectory);
        ArgumentOutOfRangeException.ThrowIfLessThan(retainedVersions, 1);
        RootDirectory = Path.GetFullPath(rootDirectory);
        RetainedVersions = retainedVersions;
        this.logger = logger ?? NullLogger<ModelStore>.Instance;
        System.IO.Directory.CreateDirectory(RootDirectory);
        rootIdentity = DirectoryIdentity.Record(RootDirectory, "model store directory");
        RemoveAbandonedWrites(AbandonedWriteAge);
    }

    /// <summary>Age after which a version found corrupt is checked again even though none of its files changed. 1 minute by default.</summary>
    public TimeSpan CorruptVersionRecheckAge { get; init; } = TimeSpan.FromMinutes(1);

    public string RootDirectory { get; }

    /// <summary>Weights files whose SHA-256 this instance computed to verify a load; tests use it to check what a poll reads.</summary>
    public long WeightsHashed => Interlocked.Read(ref weightsHashed);

    public int RetainedVersions { get; }

    /// <summary>
    /// Maximum time that retention waits for the version lock, which a promote or a rollback holds while it checks a version.
    /// Past it, retention runs without the lock (warning 106), so a holder that never releases the lock cannot stall
    /// every later save. A load that finds a file missing waits as long before it checks whether retention deleted the
    /// version. 30 s by default, and <see cref="Timeout.InfiniteTimeSpan"/> waits as long as the lock is held.
    /// </summary>
    public TimeSpan RetentionLockTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Throws <see cref="StoreDirectoryChangedException"/> when <see cref="RootDirectory"/> is no longer the directory
    /// that this instance opened: it was removed, renamed or replaced by another directory. Saves and installs check
    /// this before they write, so a store never numbers versions again from 1 in a directory that appeared in place of
    /// the old one. One statx call, cheap enough for every poll.
    /// </summary>
    public void EnsureRootDirectoryUnchanged() => rootIdentity.EnsureUnchanged();

    /// <summary>Version numbers present on disk, ascending. Presence does not mean the weights are intact.</summary>
    public IReadOnlyList<long> ListVersionNumbers() =>
        System.IO.Directory.EnumerateDirectories(RootDirectory, VersionPrefix + "*")
            .Select(path => TryParseVersion(Path.GetFileName(path)))
            .Where(number => number > 0)
            .Order()
            .ToList();

    /// <summary>
    /// Returns the newest version whose files are complete and whose weights match their SHA-256, or null when there is
    /// none. Only versions numbered above <paramref name="newerThan"/> are read, so a server that looks for one newer than
    /// its live version does not hash the live version's weights again.
    /// </summary>
    public ModelVersion? TryLoadLatest(long newerThan = 0)
    {
        foreach (long number in ListVersionNumbers().Reverse().TakeWhile(number => number > newerThan))
        {
            if (TryLoad(number, out ModelVersion? version))
            {
                return version;
            }
        }

        return null;
    }

    /// <summary>
    /// Loads and verifies one version. Returns false when it is missing, corrupt or unreadable, and logs why the first time a
    /// corrupt or unreadable version fails with that problem. Corrupt means a file that cannot be parsed, weights that do
    /// not match the manifest's SHA-256, a spec that cannot build a model (such as an unknown architecture), or weights
    /// that do not fit the spec's model. A version that retention deletes during the load is missing, not corrupt.
    /// </summary>
    public bool TryLoad(long number, out ModelVersion? version)
    {
        version = null;
        string directory = VersionDirectory(number);
        if (!System.IO.Directory.Exists(directory))
        {
            return false;
        }

        FileStamp[]? stamps = null;
        try
        {
            stamps = StampFiles(directory);
            if (corruptVersions.TryGetValue(number, out CorruptVersion? known)
                && known.Stamps.SequenceEqual(stamps)
                && Stopwatch.GetElapsedTime(known.FoundAt) < CorruptVersionRecheckAge)
            {
                return false;
            }

            version = Load(directory);
            reportedCorruptVersions.TryRemove(number, out _);
            corruptVersions.TryRemove(number, out _);
            return true;
        }
        catch (Exception exception) when (exception is IOException or InvalidDataException or JsonException or UnauthorizedAccessException)
        {
            // A file without read permission (a version that another user wrote on a shared volume) throws
            // UnauthorizedAccessException. Thrown, it would stop TryLoadLatest before it reached the older intact versions.
            if (exception is FileNotFoundException or DirectoryNotFoundException && WasDeleted(directory))
            {
                return false;
            }

            if (stamps is not null)
            {
                corruptVersions[number] = new CorruptVersion(stamps, Stopwatch.GetTimestamp());
            }

            if (!reportedCorruptVersions.TryGetValue(number, out string? reported) || reported != exception.Message)
            {
                reportedCorruptVersions[number] = exception.Message;
                LogCorruptVersion(logger, exception, number, directory);
            }

            return false;
        }
    }

    // Retention deletes a version's directory while it holds the version lock, so once the lock is free, a deletion
    // that removed a file during the load has finished. The wait is bounded like retention's, so a holder that never
    // releases the lock delays such a load (the learner's pin watch, which a stop waits for) by at most the timeout.
    private bool WasDeleted(string directory)
    {
        try
        {
            StoreFileLock.Acquire(RootDirectory, VersionLockFileName, RetentionLockTimeout).Dispose();
        }
        catch (Exception exception) when (exception is IOException or TimeoutException)
        {
            // A store that this process cannot lock, such as a read-only mount, or whose lock another holder keeps past
            // the timeout, is checked without the lock.
        }

        return !System.IO.Directory.Exists(directory);
    }

    /// <summary>
    /// Writes <paramref name="module"/>'s weights as the next version and returns it.
    /// The manifest's version number, timestamp and checksum are filled in here.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// The module's tensors do not fit the model that <paramref name="spec"/> describes, so every load would reject the
    /// version as corrupt. Nothing is written.
    /// </exception>
    /// <exception cref="InvalidDataException"><paramref name="spec"/> cannot build a model.</exception>
    /// <exception cref="StoreDirectoryChangedException">
    /// <see cref="RootDirectory"/> is no longer the directory this instance opened. Nothing is written.
    /// </exception>
    public ModelVersion Save(ModelSpec spec, nn.Module<Tensor, Tensor> module, ModelManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(module);
        List<string> problems = StateDictFile.FindMismatches(ModelFactory.DescribeState(spec), TensorLayout.StateOf(module));
        if (problems.Count > 0)
        {
            throw new ArgumentException(
                $"The module does not fit the model that spec '{spec.Name}' describes ({spec.DescribeModel()}), so loads would reject "
                + $"the version as corrupt: {StateDictFile.JoinProblems(problems)}",
                nameof(module));
        }

        lock (writeLock)
        {
            EnsureRootDirectoryUnchanged();
            long number = HighestVersionNumber() + 1;
            string temporary = Path.Combine(RootDirectory, TemporaryPrefix + Guid.NewGuid().ToString("N"));
            FileSync.CreateDirectoryInExistingParent(temporary);
            try
            {
                string weightsPath = Path.Combine(temporary, WeightsFileName);
                module.save(weightsPath);
                FileSync.FlushFile(weightsPath);
                ModelManifest complete = manifest with
                {
                    ModelName = spec.Name,
                    Version = number,
                    CreatedAt = DateTimeOffset.UtcNow,
                    WeightsSha256 = ComputeSha256(weightsPath),
                    WeightsBytes = new FileInfo(weightsPath).Length,
                };
                FileSync.WriteAllBytesDurably(Path.Combine(temporary, SpecFileName), JsonSerializer.SerializeToUtf8Bytes(spec, ModelSpec.JsonOptions));
                FileSync.WriteAllBytesDurably(Path.Combine(temporary, ManifestFileName), JsonSerializer.SerializeToUtf8Bytes(complete, ModelManifest.JsonOptions));
                FileSync.FlushDirectory(temporary);

                // The root may have been swapped while the files were written. The version is numbered after the
                // versions of the directory that was opened, so it must not appear in another one.
                EnsureRootDirectoryUnchanged();

                // Recorded before the version appears, so a stop between the two leaves a gap in the numbers, never a
                // number given twice.
                FileSync.WriteAtomically(RootDirectory, HighestVersionFileName, Encoding.ASCII.GetBytes(number.ToString(CultureInfo.InvariantCulture)));
                string final = VersionDirectory(number);
                System.IO.Directory.Move(temporary, final);
                FileSync.FlushDirectory(RootDirectory);
                LogVersionSaved(logger, number, complete.WeightsSha256, final);
                ApplyRetention();
                return new ModelVersion(spec, complete, final);
            }
            catch
            {
                TryDeleteDirectory(temporary);
                throw;
            }
        }
    }

    /// <summary>
    /// Returns the highest version number this store has saved or contains, corrupt and deleted versions included. A
    /// learner whose newest intact version is below it announces both numbers, so that replicas tell a corrupt or deleted
    /// newest version apart from a store that numbers from 1 again.
    /// </summary>
    public long HighestVersionNumber()
    {
        IReadOnlyList<long> existing = ListVersionNumbers();
        return Math.Max(existing.Count == 0 ? 0 : existing[^1], ReadHighestSavedVersion());
    }

    // The highest number this store has saved, from .highest-version, or 0 without a readable record. The versions on disk
    // alone are not enough. When the newest version's directory is deleted (the repair for a corrupt version), its number
    // would go to the next version. Replicas that hold the deleted one would then serve its weights under the number
    // that the new version's announcement names.
    private long ReadHighestSavedVersion()
    {
        string path = Path.Combine(RootDirectory, HighestVersionFileName);
        string text;
        try
        {
            text = File.ReadAllText(path).Trim();
        }
        catch (FileNotFoundException)
        {
            return 0;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            LogHighestVersionUnreadable(logger, path, exception.Message);
            return 0;
        }

        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long number))
        {
            return number;
        }

        LogHighestVersionUnreadable(logger, path, $"'{text}' is not a version number");
        return 0;
    }

    /// <summary>
    /// Moves <paramref name="directory"/>, a complete copy of version <paramref name="number"/> whose files are flushed
    /// already (a replica's download), into the store as that version. It replaces a copy of the version that failed
    /// verification, and flushes both directories, so that the rename survives a power loss.
    /// </summary>
    /// <exception cref="StoreDirectoryChangedException">
    /// <see cref="RootDirectory"/> is no longer the directory this instance opened. Nothing is moved.
    /// </exception>
    public void Install(string directory, long number)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentOutOfRangeException.ThrowIfLessThan(number, 1);
        lock (writeLock)
        {
            EnsureRootDirectoryUnchanged();
            FileSync.FlushDirectory(directory);
            string final = VersionDirectory(number);
            if (System.IO.Directory.Exists(final))
            {
                System.IO.Directory.Delete(final, recursive: true);
            }

            System.IO.Directory.Move(directory, final);
            FileSync.FlushDirectory(RootDirectory);
        }
    }

    /// <summary>
    /// Takes the store's version lock, which retention holds while it reads the pin and deletes versions. A caller that
    /// checks a version and pins it under the lock therefore pins a version that no process sharing the store deletes.
    /// </summary>
    public IDisposable LockVersions() => StoreFileLock.Acquire(RootDirectory, VersionLockFileName);

    public string VersionDirectory(long number) =>
        Path.Combine(RootDirectory, VersionPrefix + number.ToString("D8", CultureInfo.InvariantCulture));

    public static string ComputeSha256(string path)
    {
        using FileStream stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    // Length and last write time of each file a load reads. A missing file has length -1, so that its return counts as
    // a change too.
    private static FileStamp[] StampFiles(string directory) =>
        [.. new[] { SpecFileName, ManifestFileName, WeightsFileName }.Select(name =>
        {
            var file = new FileInfo(Path.Combine(directory, name));
            return file.Exists ? new FileStamp(file.Length, file.LastWriteTimeUtc) : new FileStamp(-1, default);
        })];

    private ModelVersion Load(string directory)
    {
        ModelSpec spec = ModelSpec.FromJson(File.ReadAllText(Path.Combine(directory, SpecFileName)));
        ModelManifest manifest = JsonSerializer.Deserialize<ModelManifest>(
                File.ReadAllBytes(Path.Combine(directory, ManifestFileName)), ModelManifest.JsonOptions)
            ?? throw new InvalidDataException("manifest.json is empty.");
        string weightsPath = Path.Combine(directory, WeightsFileName);
        Interlocked.Increment(ref weightsHashed);
        string actual = ComputeSha256(weightsPath);
        if (!string.Equals(actual, manifest.WeightsSha256, StringComparison.Ordinal))
        {
            throw new InvalidDataException(
                $"SHA-256 of {weightsPath} is {actual} but the manifest records {manifest.WeightsSha256}; the weights are corrupt.");
        }

        // Weights that do not fit the spec's model pass the hash check but fail every load into a module, so they make
        // the version corrupt too. Only the tensor headers are read, and no module is built.
        StateDictFile.Verify(weightsPath, ModelFactory.DescribeState(spec), spec.DescribeModel());
        return new ModelVersion(spec, manifest, directory);
    }

    // The pinned version is kept however old it is: servers restarting on the pin and replicas that download it need it.
    private void ApplyRetention()
    {
        List<long> deleted = [];
        IDisposable? versionLock = null;
        try
        {
            versionLock = StoreFileLock.Acquire(RootDirectory, VersionLockFileName, RetentionLockTimeout);
            retentionLockProblem = null;
        }
        catch (Exception exception) when (exception is IOException or TimeoutException)
        {
            // The new version is durable already, so the save succeeds. Retention still runs, because a store that
            // never deletes fills its volume, and a promote racing it is the smaller risk.
            if (exception.Message != retentionLockProblem)
            {
                retentionLockProblem = exception.Message;
                LogRetentionUnlocked(logger, exception, RootDirectory);
            }
        }

        using (versionLock)
        {
            IReadOnlyList<long> numbers = ListVersionNumbers();
            long? pinned = ReadPinnedVersionOrNull();
            foreach (long number in numbers.Take(Math.Max(0, numbers.Count - RetainedVersions)).Where(number => number != pinned))
            {
                if (TryDeleteDirectory(VersionDirectory(number)))
                {
                    deleted.Add(number);
                }
            }
        }

        // One line per save, so that lowering the retained count on a full store shows what went at once. A single
        // deletion is the usual step of a full store, so it is logged at Debug level.
        if (deleted.Count == 1)
        {
            LogRetentionDeletedOne(logger, deleted[0], RootDirectory, RetainedVersions);
        }
        else if (deleted.Count > 1)
        {
            LogRetentionDeleted(logger, deleted, RootDirectory, RetainedVersions);
        }
    }

    private long? ReadPinnedVersionOrNull()
    {
        if (StoreControlFiles.TryReadPinnedVersion(RootDirectory, out long? pinned, out string? problem))
        {
            return pinned;
        }

        LogPinUnreadable(logger, RootDirectory, problem);
        return null;
    }

    /// <summary>
    /// Deletes every temporary version directory, including ones written in the last minute. Only the store's single
    /// writer calls this when it starts, because then no write of its own is in progress. Opening a store deletes only
    /// the ones unchanged for a minute, so a server that starts on a store it shares with the learner leaves the
    /// learner's version in progress alone.
    /// </summary>
    public void RemoveAllTemporaryVersions() => RemoveAbandonedWrites(TimeSpan.Zero);

    private void RemoveAbandonedWrites(TimeSpan minimumAge)
    {
        DateTime cutoff = DateTime.UtcNow - minimumAge;
        foreach (string path in System.IO.Directory.EnumerateDirectories(RootDirectory, TemporaryPrefix + "*"))
        {
            if (minimumAge == TimeSpan.Zero || LastChange(path) < cutoff)
            {
                TryDeleteDirectory(path);
            }
        }

        FileSync.RemoveAbandonedTemporaryFiles(RootDirectory, AbandonedWriteAge);
    }

    // The newest write time of a directory and the files in it. Writing a file updates only the file's time.
    private static DateTime LastChange(string directory)
    {
        DateTime newest = System.IO.Directory.GetLastWriteTimeUtc(directory);
        foreach (string file in System.IO.Directory.EnumerateFiles(directory))
        {
            DateTime written = File.GetLastWriteTimeUtc(file);
            if (written > newest)
            {
                newest = written;
            }
        }

        return newest;
    }

    // Returns false, after logging the error, when the directory could not be deleted. A denied deletion (a file that
    // another user owns, an immutable file) throws UnauthorizedAccessException, which must not fail a durable save either.
    private bool TryDeleteDirectory(string path)
    {
        try
        {
            System.IO.Directory.Delete(path, recursive: true);
            return true;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            LogDeleteFailed(logger, exception, path);
            return false;
        }
    }

    private static long TryParseVersion(string name) =>
        name.StartsWith(VersionPrefix, StringComparison.Ordinal)
        && long.TryParse(name.AsSpan(VersionPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out long number)
            ? number
            : -1;

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Saved model version {Version} (sha256 {Sha256}) to {Directory}")]
    private static partial void LogVersionSaved(ILogger logger, long version, string sha256, string directory);

    [LoggerMessage(EventId = 101, Level = LogLevel.Error, Message = "Model version {Version} in {Directory} is corrupt or incomplete and will not be served")]
    private static partial void LogCorruptVersion(ILogger logger, Exception exception, long version, string directory);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "Could not delete {Path}")]
    private static partial void LogDeleteFailed(ILogger logger, Exception exception, string path);

    [LoggerMessage(EventId = 104, Level = LogLevel.Information, Message = "Retention deleted versions {Versions} from {Directory}, which keeps the newest {RetainedVersions} and the pinned version")]
    private static partial void LogRetentionDeleted(ILogger logger, IReadOnlyList<long> versions, string directory, int retainedVersions);

    [LoggerMessage(EventId = 105, Level = LogLevel.Debug, Message = "Retention deleted version {Version} from {Directory}, which keeps the newest {RetainedVersions} and the pinned version")]
    private static partial void LogRetentionDeletedOne(ILogger logger, long version, string directory, int retainedVersions);

    [LoggerMessage(EventId = 106, Level = LogLevel.Warning, Message = "Retention in {Directory} runs without the version lock, which could not be taken, so a promote at the same moment may pin a version that retention deletes. Check that the file system supports flock, that this process can create the lock file and that no process keeps it locked")]
    private static partial void LogRetentionUnlocked(ILogger logger, Exception exception, string directory);

    [LoggerMessage(EventId = 108, Level = LogLevel.Warning, Message = "The record of the highest saved version, {Path}, cannot be read ({Problem}), so the next version is numbered after the versions present, and may take the number of a version deleted by hand")]
    private static partial void LogHighestVersionUnreadable(ILogger logger, string path, string problem);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "The pinned-version file in {Directory} cannot be read ({Problem}), so retention may delete the pinned version")]
    private static partial void LogPinUnreadable(ILogger logger, string directory, string problem);

    private readonly record struct FileStamp(long Length, DateTime LastWriteTimeUtc);

    // FoundAt is a Stopwatch timestamp, so that a step of the wall clock does not move the recheck.
    private sealed record CorruptVersion(FileStamp[] Stamps, long FoundAt);
}
