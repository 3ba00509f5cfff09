namespace ContinualServe.Learner.Checkpoints;

/// <summary>The contents of one checkpoint file, held in memory until a thread-pool task writes them.</summary>
internal interface IFileImage : IDisposable
{
    /// <summary>Bytes in the file.</summary>
    long Length { get; }

    /// <summary>
    /// Writes the contents to a new file at <paramref name="path"/>. Does not flush to disk, because the checkpoint store
    /// flushes every file it contains before it commits the checkpoint.
    /// </summary>
    void WriteFile(string path);
}
