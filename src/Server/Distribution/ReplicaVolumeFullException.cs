namespace ContinualServe.Server.Distribution;

/// <summary>
/// Error for a version download that failed because the replica's store volume ran out of space (<c>ENOSPC</c>) or
/// its disk quota ran out (<c>EDQUOT</c>). The partial download is already deleted when it is thrown.
/// </summary>
public sealed class ReplicaVolumeFullException : IOException
{
    public ReplicaVolumeFullException(long version, long requiredBytes, long availableBytes, string directory, IOException inner)
        : base(
            $"Version {version} does not fit in {directory}: the download failed with '{inner?.Message}'. "
            + $"The version needs {(requiredBytes > 0 ? $"{requiredBytes} bytes for its weights" : "an unknown number of bytes")} "
            + $"and {availableBytes} bytes are free. Free space on the volume, make it larger, or raise its disk quota.",
            inner)
    {
        Version = version;
        RequiredBytes = requiredBytes;
        AvailableBytes = availableBytes;
        Directory = directory;
    }

    /// <summary>Version whose download failed.</summary>
    public long Version { get; }

    /// <summary>Size of the version's weights from its announcement, or 0 when a learner that predates it sent none.</summary>
    public long RequiredBytes { get; }

    /// <summary>Bytes free for this process in <see cref="Directory"/> after the partial download was deleted.</summary>
    // NOTE: these are the volume's free bytes (statvfs), which a disk quota does not lower, so they may exceed what the
    // quota still allows.
    public long AvailableBytes { get; }

    /// <summary>Store directory of the replica.</summary>
    public string Directory { get; }
}
