namespace ContinualServe.Learner.Checkpoints;

/// <summary>The start-up check that the learner can create files in its store and checkpoint directories.</summary>
internal static class WritableDirectory
{
    /// <summary>
    /// Creates and deletes an empty file in <paramref name="directory"/>. Throws the file system's
    /// <see cref="IOException"/> or <see cref="UnauthorizedAccessException"/>, whose message names the path, on a
    /// read-only volume or without write permission.
    /// </summary>
    /// <remarks>
    /// An empty file needs no data blocks, so a full volume passes this check on tmpfs and ext4 in most cases, and the
    /// learner fails later at its first write. That failure exits with code 1, so the process is restarted once space is freed.
    /// </remarks>
    public static void Check(string directory)
    {
        string probe = Path.Combine(directory, $".write-check-{Guid.NewGuid():N}");
        using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
        }

        File.Delete(probe);
    }
}
