using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;

namespace ContinualServe.Server.Distribution;

/// <summary>
/// Copies an announced version from the learner's HTTP model store into this replica's local store.
/// Files are written to a hidden temporary directory and renamed into place only after the weights'
/// SHA-256 matches the announcement and the manifest, so a corrupt or partial download never becomes a
/// version that <see cref="ModelStore"/> could load.
/// </summary>
public sealed class VersionDownloader
{
    private const string TemporaryPrefix = ".download-";

    /// <summary>
    /// Age after which a temporary directory whose lock cannot be checked counts as abandoned: one without a lock file
    /// (made by a release that predates the lock), or one on a platform or file system without flock. It is longer than
    /// the largest Distribution:DownloadTimeout (1 day), and a running download writes to its files at least once per
    /// DownloadTimeout, so no download that still receives bytes is deleted by this rule.
    /// </summary>
    public static readonly TimeSpan UnlockedDownloadAge = TimeSpan.FromHours(25);

    // The spec and manifest are small JSON files (a few KiB, the manifest's accuracy matrix growing with the square of
    // the task count), so the cap only stops a broken or hostile store from filling the replica's disk with them.
    private const long MaxMetadataFileBytes = 16 * 1024 * 1024;

    private readonly HttpClient http;
    private readonly ModelStore store;
    private readonly string? storeUrlOverride;
    private readonly long minBytesPerSecond;

    /// <summary>
    /// Creates a downloader that uses HttpClient.Timeout of <paramref name="http"/> as its stall timeout, and fails a
    /// file whose body brings fewer than <paramref name="minBytesPerSecond"/> bytes per second on average over one
    /// stall timeout, counted from the response headers. A <paramref name="minBytesPerSecond"/> of 0, or a client
    /// without a timeout, turns that check off.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="minBytesPerSecond"/> is negative.</exception>
    public VersionDownloader(HttpClient http, ModelStore store, string? storeUrlOverride, long minBytesPerSecond = 0)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentOutOfRangeException.ThrowIfNegative(minBytesPerSecond);
        this.http = http;
        this.store = store;
        this.storeUrlOverride = string.IsNullOrWhiteSpace(storeUrlOverride) ? null : storeUrlOverride;
        this.minBytesPerSecond = minBytesPerSecond;
    }

    /// <summary>
    /// Deletes the temporary directories that interrupted downloads left behind, and returns the paths deleted. Replicas
    /// may share one volume, so a directory counts as abandoned only when this process can take its download lock without
    /// waiting (<see cref="DownloadLock"/>), which the downloading process holds until it ends. A directory whose lock
    /// cannot be checked is deleted when nothing in it changed for <see cref="UnlockedDownloadAge"/>.
    /// </summary>
    /// <exception cref="IOException">The store directory cannot be listed.</exception>
    /// <exception cref="UnauthorizedAccessException">The store directory cannot be read.</exception>
    public IReadOnlyList<string> RemoveAbandonedDownloads() => RemoveAbandonedDownloads(out _);

    /// <summary>
    /// Deletes abandoned temporary directories as <see cref="RemoveAbandonedDownloads()"/> does, and sets
    /// <paramref name="failures"/> to those that could not be deleted. A directory that fails does not stop the others.
    /// </summary>
    /// <exception cref="IOException">The store directory cannot be listed.</exception>
    /// <exception cref="UnauthorizedAccessException">The store directory cannot be read.</exception>
    public IReadOnlyList<string> RemoveAbandonedDownloads(out IReadOnlyList<DownloadCleanupFailure> failures)
    {
        var removed = new List<string>();
        var failed = new List<DownloadCleanupFailure>();
        foreach (string path in Directory.EnumerateDirectories(store.RootDirectory, TemporaryPrefix + "*"))
        {
            try
            {
                if (TryRemoveAbandoned(path, DateTime.UtcNow))
                {
                    removed.Add(path);
                }
            }
            catch (DirectoryNotFoundException)
            {
                // Its download finished or failed, or another replica on the same volume deleted it first.
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
            {
                // Replicas that share a volume may run as other users, whose directories this one cannot delete.
                failed.Add(new DownloadCleanupFailure(path, exception));
            }
        }

        failures = failed;
        return removed;
    }

    // The temporary directory's name is ".download-HOST-PID-GUID". Host and process id only help an operator find the
    // owner, because containers that share a volume may share a host name and all run as process 1.
    private static string TemporaryName() =>
        $"{TemporaryPrefix}{Environment.MachineName}-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{Guid.NewGuid():N}";

    private static bool TryRemoveAbandoned(string path, DateTime now)
    {
        DownloadLock.LockState state = DownloadLock.TryTake(path, out DownloadLock? taken);
        if (state == DownloadLock.LockState.Taken)
        {
            // The lock stays held while the directory is deleted, so a downloader that created the lock file but has not
            // locked it yet finds the directory gone once it gets the lock, and fails instead of writing into it.
            using (taken)
            {
                Directory.Delete(path, recursive: true);
            }

            return true;
        }

        if (state == DownloadLock.LockState.Held || now - LastWriteTimeUtc(path) <= UnlockedDownloadAge)
        {
            return false;
        }

        Directory.Delete(path, recursive: true);
        return true;
    }

    // The newest write time of the directory and its files, because a download appends to its files without changing
    // the directory itself.
    private static DateTime LastWriteTimeUtc(string path)
    {
        DateTime newest = Directory.GetLastWriteTimeUtc(path);
        foreach (string file in Directory.EnumerateFiles(path))
        {
            DateTime written = File.GetLastWriteTimeUtc(file);
            newest = written > newest ? written : newest;
        }

        return newest;
    }

    /// <summary>
    /// Returns the verified local copy of the announced version, downloading it first when the local store
    /// lacks an intact copy.
    /// </summary>
    /// <exception cref="InvalidDataException">The downloaded files do not match the announcement.</exception>
    /// <exception cref="HttpRequestException">The learner's store could not be reached or returned an error.</exception>
    /// <exception cref="ReplicaVolumeFullException">
    /// The replica's store volume, or this process's disk quota on it, has no space left for the version.
    /// </exception>
    /// <exception cref="StoreDirectoryChangedException">
    /// The replica's store directory was removed, renamed or replaced since the store opened it. Nothing is downloaded,
    /// and the directory is not created again.
    /// </exception>
    /// <exception cref="TaskCanceledException">The store sent no bytes for HttpClient.Timeout.</exception>
    /// <exception cref="TimeoutException">
    /// A file's transfer brought fewer than the minimum bytes per second over one HttpClient.Timeout.
    /// </exception>
    public async Task<ModelVersion> InstallAsync(ModelVersionAnnouncement announcement, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(announcement);
        if (TryLoadInstalled(announcement, out ModelVersion? existing))
        {
            return existing;
        }

        Uri baseUri = ResolveBaseUri(announcement);

        // HttpClient.Timeout (Distribution:DownloadTimeout on a replica) stops covering a request once its headers are
        // read, so this token covers the bodies too. Each request and each read restarts it, so it bounds the time
        // without bytes, and a large version may take as long as it needs while the store keeps sending at the
        // minimum rate (Distribution:MinDownloadBytesPerSecond, which DownloadRateCheck enforces).
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        try
        {
            await DownloadAndInstallAsync(baseUri, announcement, stall).ConfigureAwait(false);
        }
        catch (OperationCanceledException exception) when (stall.IsCancellationRequested && !cancellation.IsCancellationRequested)
        {
            throw new TaskCanceledException(
                $"The download of version {announcement.Version} timed out: the store sent no bytes for {http.Timeout} "
                + "(Distribution:DownloadTimeout).",
                exception);
        }
        catch (IOException exception) when (IsOutOfSpace(exception))
        {
            // Measured after the partial download was deleted, so the free bytes are what the next attempt gets.
            long available = new DriveInfo(store.RootDirectory).AvailableFreeSpace;
            throw new ReplicaVolumeFullException(announcement.Version, announcement.WeightsBytes, available, store.RootDirectory, exception);
        }

        // ModelStore checks the SHA-256 again on load, so the swapped-in weights are the verified ones.
        return store.TryLoad(announcement.Version, out ModelVersion? installed)
            ? installed!
            : throw new InvalidDataException($"Version {announcement.Version} failed verification after it was moved into {store.RootDirectory}.");
    }

    // .NET on Unix puts the errno in HResult. ENOSPC (no space left) is 28 on Linux and macOS, and EDQUOT (disk quota
    // exceeded) is 122 on Linux and 69 on macOS.
    // NOTE: the Windows HRESULTs of ERROR_DISK_FULL (112) and ERROR_HANDLE_DISK_FULL (39) are untested here.
    internal static bool IsOutOfSpace(IOException exception)
    {
        if (OperatingSystem.IsWindows())
        {
            return exception.HResult is unchecked((int)0x80070070) or unchecked((int)0x80070027);
        }

        int quotaExceeded = OperatingSystem.IsLinux() ? 122 : 69;
        return exception.HResult == 28 || exception.HResult == quotaExceeded;
    }

    private async Task DownloadAndInstallAsync(Uri baseUri, ModelVersionAnnouncement announcement, CancellationTokenSource stall)
    {
        string temporary = CreateTemporaryDirectory();
        DownloadLock? ownership = null;
        try
        {
            ownership = DownloadLock.Create(temporary);
            await DownloadAsync(baseUri, announcement.Version, ModelStore.SpecFileName, MaxMetadataFileBytes, temporary, stall)
                .ConfigureAwait(false);
            ModelManifest manifest = await DownloadManifestAsync(baseUri, announcement, temporary, stall).ConfigureAwait(false);

            // An announcement from a learner that predates WeightsBytes carries 0, which leaves the weights without a size bound.
            long maxWeightsBytes = announcement.WeightsBytes > 0 ? announcement.WeightsBytes : long.MaxValue;
            string sha256 = await DownloadAsync(baseUri, announcement.Version, ModelStore.WeightsFileName, maxWeightsBytes, temporary, stall)
                .ConfigureAwait(false);
            if (!string.Equals(sha256, announcement.WeightsSha256, StringComparison.Ordinal))
            {
                throw new InvalidDataException(
                    $"SHA-256 of the downloaded weights of version {announcement.Version} is {sha256} but the announcement records "
                    + $"{announcement.WeightsSha256}; the weights are corrupt and are not served.");
            }

            if (!string.Equals(manifest.WeightsSha256, announcement.WeightsSha256, StringComparison.Ordinal))
            {
                throw new InvalidDataException(
                    $"The manifest of version {announcement.Version} records SHA-256 {manifest.WeightsSha256} but the announcement "
                    + $"records {announcement.WeightsSha256}.");
            }

            // Another replica on a shared volume may have installed the version during this download, and may be loading
            // it now, so an intact copy stays. An earlier copy that failed verification is replaced.
            // NOTE: a copy that another replica installs between this check and the move is still replaced.
            if (!TryLoadInstalled(announcement, out _))
            {
                // The lock file must not move into the version. A cleanup that finds no lock file keeps a directory that
                // changed within UnlockedDownloadAge, so the lock is not needed from here on.
                File.Delete(Path.Combine(temporary, DownloadLock.FileName));
                store.Install(temporary, announcement.Version);
            }
        }
        finally
        {
            // The directory is deleted before the lock is released, so no cleanup can take the lock of a directory that
            // is being deleted.
            if (Directory.Exists(temporary))
            {
                Directory.Delete(temporary, recursive: true);
            }

            ownership?.Dispose();
        }
    }

    // The store directory is checked first, so that nothing is downloaded into a directory that replaced it. mkdir
    // creates no missing parent, so a store directory removed under the running replica is not created again.
    private string CreateTemporaryDirectory()
    {
        store.EnsureRootDirectoryUnchanged();
        string temporary = Path.Combine(store.RootDirectory, TemporaryName());
        try
        {
            FileSync.CreateDirectoryInExistingParent(temporary);
        }
        catch (DirectoryNotFoundException)
        {
            // The directory was removed after the check, so this call throws StoreDirectoryChangedException, which names
            // it, unless the directory was moved back meanwhile.
            store.EnsureRootDirectoryUnchanged();
            throw;
        }

        return temporary;
    }

    // ModelStore.TryLoad returns false for a copy that is corrupt or cannot be read, so the download replaces such a copy.
    private bool TryLoadInstalled(ModelVersionAnnouncement announcement, [NotNullWhen(true)] out ModelVersion? installed) =>
        store.TryLoad(announcement.Version, out installed)
        && string.Equals(installed!.Manifest.WeightsSha256, announcement.WeightsSha256, StringComparison.Ordinal);

    /// <summary>
    /// Deletes local versions older than the newest <paramref name="retained"/>, never <paramref name="live"/>, and returns
    /// the versions that could not be deleted. A version that fails (an I/O error, or a deletion the system denies) does
    /// not stop the deletion of the others.
    /// </summary>
    /// <exception cref="IOException">The store directory cannot be listed.</exception>
    /// <exception cref="UnauthorizedAccessException">The store directory cannot be read.</exception>
    public IReadOnlyList<RetentionFailure> ApplyRetention(int retained, long live)
    {
        IReadOnlyList<long> numbers = store.ListVersionNumbers();
        var failures = new List<RetentionFailure>();
        foreach (long number in numbers.Take(Math.Max(0, numbers.Count - retained)).Where(number => number != live))
        {
            string directory = store.VersionDirectory(number);
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (DirectoryNotFoundException)
            {
                // Another replica on the same volume applied its retention first, or is deleting this version right now.
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
            {
                failures.Add(new RetentionFailure(number, directory, exception));
            }
        }

        return failures;
    }

    /// <summary>Returns the store URL a download of <paramref name="announcement"/> uses: this server's override, else the announced one, or null when neither is set.</summary>
    public string? StoreUrlFor(ModelVersionAnnouncement announcement)
    {
        ArgumentNullException.ThrowIfNull(announcement);
        return storeUrlOverride ?? (string.IsNullOrWhiteSpace(announcement.StoreUrl) ? null : announcement.StoreUrl);
    }

    private Uri ResolveBaseUri(ModelVersionAnnouncement announcement)
    {
        string? url = StoreUrlFor(announcement);
        if (url is null || !Uri.TryCreate(url.EndsWith('/') ? url : url + "/", UriKind.Absolute, out Uri? uri))
        {
            throw new InvalidOperationException(
                $"Version {announcement.Version} cannot be downloaded: the announcement has no valid store URL ('{announcement.StoreUrl}') "
                + "and Distribution:StoreUrl is not set on this server. Start the learner with --store-url set to an address of its "
                + "--urls that the replicas reach, or give this server --store-url.");
        }

        return uri;
    }

    private async Task<ModelManifest> DownloadManifestAsync(
        Uri baseUri, ModelVersionAnnouncement announcement, string directory, CancellationTokenSource stall)
    {
        await DownloadAsync(baseUri, announcement.Version, ModelStore.ManifestFileName, MaxMetadataFileBytes, directory, stall)
            .ConfigureAwait(false);
        await using FileStream stream = File.OpenRead(Path.Combine(directory, ModelStore.ManifestFileName));
        ModelManifest manifest = await System.Text.Json.JsonSerializer
                .DeserializeAsync<ModelManifest>(stream, ModelManifest.JsonOptions, stall.Token).ConfigureAwait(false)
            ?? throw new InvalidDataException($"The manifest of version {announcement.Version} is empty.");
        if (manifest.Version != announcement.Version)
        {
            throw new InvalidDataException(
                $"The manifest served for version {announcement.Version} describes version {manifest.Version}.");
        }

        return manifest;
    }

    /// <summary>
    /// Streams one file to disk, flushes it, and returns its lower-case hex SHA-256. <paramref name="stall"/> is cancelled
    /// when no bytes arrive for HttpClient.Timeout, counted from the request, from the response headers and from each
    /// read. The minimum rate is measured from the response headers on.
    /// </summary>
    /// <exception cref="InvalidDataException">The store sent more than <paramref name="maxBytes"/> bytes.</exception>
    /// <exception cref="TimeoutException">The transfer fell below the minimum rate (<see cref="DownloadRateCheck"/>).</exception>
    private async Task<string> DownloadAsync(
        Uri baseUri, long version, string file, long maxBytes, string directory, CancellationTokenSource stall)
    {
        CancellationToken cancellation = stall.Token;
        stall.CancelAfter(http.Timeout);
        using HttpResponseMessage response = await http
            .GetAsync(new Uri(baseUri, ModelStoreApi.FilePath(version, file)), HttpCompletionOption.ResponseHeadersRead, cancellation)
            .ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            throw new HttpRequestException(
                $"The learner's model store rejected the download of {file} of version {version} with {(int)response.StatusCode} ({response.StatusCode}). "
                + $"Give this server the learner's store token, in {DistributionOptions.SectionName}:{nameof(DistributionOptions.StoreTokenFile)} "
                + $"or the {DistributionOptions.DefaultStoreTokenVariable} variable.",
                inner: null,
                response.StatusCode);
        }

        response.EnsureSuccessStatusCode();
        stall.CancelAfter(http.Timeout);

        // The rate's first window starts with the body, so a store that takes most of a timeout to send its headers
        // is not measured as slow. The wait for the headers is bounded by HttpClient.Timeout and the stall timeout.
        var rate = new DownloadRateCheck(minBytesPerSecond, http.Timeout, file, version, baseUri);
        await using Stream body = await response.Content.ReadAsStreamAsync(cancellation).ConfigureAwait(false);
        await using var output = new FileStream(Path.Combine(directory, file), FileMode.CreateNew, FileAccess.Write);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[81_920];
        long received = 0;
        int read;
        while ((read = await body.ReadAsync(buffer, cancellation).ConfigureAwait(false)) > 0)
        {
            received += read;
            if (received > maxBytes)
            {
                throw new InvalidDataException(
                    $"The learner's model store sent more than {maxBytes} bytes for {file} of version {version}, "
                    + "more than the announcement or the size limit allows; the download is discarded.");
            }

            hash.AppendData(buffer, 0, read);
            await output.WriteAsync(buffer.AsMemory(0, read), cancellation).ConfigureAwait(false);
            rate.Add(read);
            stall.CancelAfter(http.Timeout);
        }

        output.Flush(flushToDisk: true);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
