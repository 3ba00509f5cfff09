using System.Globalization;

namespace ContinualServe.Learner;

/// <summary>
/// The exclusive lock that a running learner holds on its model store. A second learner on the same directory would
/// remove the first one's temporary version at its start and then write version numbers that the first one writes
/// too, so it fails at its start instead. The lock is on <see cref="FileName"/> in the store directory. .NET takes it
/// with flock(LOCK_EX | LOCK_NB) on Linux for <see cref="FileShare.None"/>, so the kernel releases it when the process
/// ends, also after SIGKILL.
/// </summary>
// NOTE: with DOTNET_SYSTEM_IO_DISABLEFILELOCKING set, .NET takes no flock and the lock excludes nothing. Off Linux, a
// held lock fails the start with a plain IOException in place of StoreInUseException.
internal static class StoreWriterLock
{
    public const string FileName = ".learner.lock";

    // EWOULDBLOCK on Linux. .NET on Unix reports a file that another open file description has locked as an IOException
    // whose HResult is the errno of the failed flock.
    private const int WouldBlock = 11;

    /// <summary>
    /// Takes the lock on <paramref name="storeDirectory"/>, which <paramref name="description"/> names in errors ("model
    /// store", "checkpoint directory"), without waiting and writes this process's id, host and start
    /// time into the lock file, for an operator to read with cat. A .NET FileStream cannot read it while the lock is
    /// held, because it takes a shared flock. Disposing the returned stream releases the lock.
    /// </summary>
    /// <exception cref="StoreInUseException">Another learner, in this process or another, holds the lock.</exception>
    /// <exception cref="IOException">The lock file cannot be created or written.</exception>
    /// <exception cref="IncompatibleStateException">A directory is at the lock file's path.</exception>
    /// <exception cref="UnauthorizedAccessException">This process has no write permission on the store directory.</exception>
    public static FileStream Acquire(string storeDirectory, string description)
    {
        string path = Path.Combine(storeDirectory, FileName);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException exception) when (exception.HResult == WouldBlock)
        {
            throw new StoreInUseException(
                $"Another learner is running on the {description} '{storeDirectory}': it holds the lock on '{path}', whose text "
                + "names its process id, host and start time. One store and one checkpoint directory have one learner: stop "
                + "the other learner, or give this one its own --store and --checkpoint-dir.",
                exception);
        }
        catch (UnauthorizedAccessException exception) when (Directory.Exists(path))
        {
            // Opening a directory as a file fails with EISDIR, which .NET reports as access denied. The error is not an
            // IOException, which the learner's host reports with advice about write permissions that does not apply here.
            throw new IncompatibleStateException(
                $"The lock file '{path}' of the {description} '{storeDirectory}' is a directory, so the learner cannot lock "
                + $"the {description}. A learner creates this file itself: remove the directory, then start the learner again.",
                exception);
        }

        try
        {
            using var writer = new StreamWriter(stream, leaveOpen: true);
            stream.SetLength(0);
            writer.Write(string.Create(
                CultureInfo.InvariantCulture,
                $"process {Environment.ProcessId} on host {Environment.MachineName}, started {DateTimeOffset.UtcNow:O}"));
            writer.Flush();
            stream.Flush(flushToDisk: true);
            return stream;
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }
}
