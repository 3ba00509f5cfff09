namespace ContinualServe.Learner.Faults;

/// <summary>
/// A file access under a <see cref="FileAccessWatchdog"/>: the operation as a noun phrase for log messages, such as
/// "golden set read", and the path that the operation reached last.
/// </summary>
public readonly record struct WatchedFileAccess(string Operation, string Path);
