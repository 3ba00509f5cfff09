namespace ContinualServe.Model.Store;

/// <summary>
/// The error that a store directory raises when the directory at its path is no longer the one it opened: it was
/// removed, renamed or replaced by another directory while the process ran. Nothing is written into it after that.
/// </summary>
public sealed class StoreDirectoryChangedException : IOException
{
    public StoreDirectoryChangedException(string directory, string message)
        : base(message) => Directory = directory;

    /// <summary>The path that the store opened.</summary>
    public string Directory { get; }
}
