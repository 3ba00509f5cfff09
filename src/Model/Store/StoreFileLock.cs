using System.Runtime.InteropServices;

namespace ContinualServe.Model.Store;

/// <summary>
/// An exclusive advisory lock (flock) on a file in the model store directory. Every process and every
/// <see cref="ModelStore"/> instance on the same directory shares it, unlike a lock object in memory.
/// </summary>
internal sealed partial class StoreFileLock : IDisposable
{
    private const int ReadOnlyCreate = 0x40 | 0x80000; // O_RDONLY | O_CREAT | O_CLOEXEC on Linux
    private const int Exclusive = 2; // LOCK_EX
    private const int Interrupted = 4; // EINTR
    private const uint ReadableByAll = 0x1A4; // 0644

    // The lock files this thread holds, with how often each was taken. flock also excludes a second descriptor opened by
    // the same process, so a nested Acquire on the holding thread counts up in place of waiting for itself.
    [ThreadStatic]
    private static Dictionary<string, int>? heldByThread;

    private readonly string path;
    private int descriptor;
    private bool disposed;

    private StoreFileLock(string path, int descriptor)
    {
        this.path = path;
        this.descriptor = descriptor;
    }

    /// <summary>
    /// Waits for the lock on <paramref name="directory"/>/<paramref name="name"/>, creating the file when it is missing.
    /// The file is opened read-only, so processes of other users that can read the store can lock it too.
    /// </summary>
    // NOTE: only Linux takes the lock. Elsewhere this returns at once and excludes nothing.
    public static StoreFileLock Acquire(string directory, string name)
    {
        string path = Path.Combine(directory, name);
        if (!OperatingSystem.IsLinux())
        {
            return new StoreFileLock(path, -1);
        }

        heldByThread ??= new Dictionary<string, int>(StringComparer.Ordinal);
        if (heldByThread.TryGetValue(path, out int depth))
        {
            heldByThread[path] = depth + 1;
            return new StoreFileLock(path, -1);
        }

        int opened = Open(path, ReadOnlyCreate, ReadableByAll);
        if (opened < 0)
        {
            throw new IOException($"Could not open the lock file '{path}' (errno {Marshal.GetLastPInvokeError()}).");
        }

        while (Flock(opened, Exclusive) != 0)
        {
            int error = Marshal.GetLastPInvokeError();
            if (error != Interrupted)
            {
                _ = Close(opened);
                throw new IOException($"Could not lock '{path}' (errno {error}).");
            }
        }

        heldByThread[path] = 1;
        return new StoreFileLock(path, opened);
    }

    /// <summary>
    /// Releases this hold, and the lock with the outermost one by closing the file. Call it on the thread that took the
    /// lock.
    /// </summary>
    public void Dispose()
    {
        if (disposed || !OperatingSystem.IsLinux() || heldByThread is null || !heldByThread.TryGetValue(path, out int depth))
        {
            return;
        }

        disposed = true;

        if (depth > 1)
        {
            heldByThread[path] = depth - 1;
            return;
        }

        heldByThread.Remove(path);
        int openDescriptor = Interlocked.Exchange(ref descriptor, -1);
        if (openDescriptor >= 0)
        {
            _ = Close(openDescriptor);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static partial int Flock(int descriptor, int operation);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int descriptor);
}
