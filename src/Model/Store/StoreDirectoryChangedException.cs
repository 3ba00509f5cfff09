namespace ContinualServe.Model.Store;

/// <summary>
/// Error raised by a store whose path no longer leads to the directory it opened, because that directory was removed,
/// renamed or replaced while the process ran. The store writes nothing after it.
/// </summary>
public sealed class StoreDirectoryChangedException : IOException
{
    public StoreDirectoryChangedException(string directory, string message)
        : base(message) => Directory = directory;

    /// <summary>The path that the store opened.</summary>
    public string Directory { get; }
}
