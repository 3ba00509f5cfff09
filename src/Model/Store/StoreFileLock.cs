using System.Runtime.InteropServices;

namespace ContinualServe.Model.Store;

/// <summary>
/// An exclusive advisory lock (flock) on a file in the model store directory. Every process and every
/// <see cref="ModelStore"/> instance on the same directory shares it, unlike a lock object in memory.
/// </summary>
internal sealed partial class StoreFileLock : IDisposable
{
    private const int OpenFlags = 0x40 | 0x80000; // O_RDONLY | O_CREAT | O_CLOEXEC on Linux
    private const int Exclusive = 2; // LOCK_EX
    private const int NonBlocking = 4; // LOCK_NB
    private const int Interrupted = 4; // EINTR
    private const int WouldBlock = 11; // EWOULDBLOCK on Linux
    private static readonly TimeSpan RetryInterval = TimeSpan.FromMilliseconds(50);
    private const uint ReadableByAll = 0x1A4; // 0644

    // The lock files this thread holds, by canonical path. flock also excludes a second descriptor opened by the same
    // process, so a nested Acquire on the holding thread counts up in place of waiting for itself.
    [ThreadStatic]
    private static Dictionary<string, Hold>? heldByThread;

    // The map that this hold is registered in, which belongs to the thread that took the lock, or null off Linux.
    private readonly Dictionary<string, Hold>? heldBy;
    private readonly string key;
    private readonly Hold? hold;
    private int disposed;

    private StoreFileLock(Dictionary<string, Hold>? heldBy, string key, Hold? hold)
    {
        this.heldBy = heldBy;
        this.key = key;
        this.hold = hold;
    }

    /// <summary>
    /// Waits for the lock on <paramref name="directory"/>/<paramref name="name"/>, creating the file when it is missing.
    /// The file is opened read-only, so processes of other users that can read the store can lock it too.
    /// </summary>
    /// <param name="directory">The store directory that contains the lock file.</param>
    /// <param name="name">The lock file's name.</param>
    /// <param name="timeout">
    /// The maximum wait for another holder to release the lock, or null or <see cref="Timeout.InfiniteTimeSpan"/> to wait as
    /// long as it takes.
    /// </param>
    /// <exception cref="IOException">The lock file cannot be opened or locked.</exception>
    /// <exception cref="TimeoutException">Another holder kept the lock for all of <paramref name="timeout"/>.</exception>
    // NOTE: only Linux takes the lock. Elsewhere this returns at once and excludes nothing.
    public static StoreFileLock Acquire(string directory, string name, TimeSpan? timeout = null)
    {
        string path = Path.Combine(directory, name);
        if (!OperatingSystem.IsLinux())
        {
            return new StoreFileLock(null, path, null);
        }

        // Symlinks and relative spellings of the store resolve to one key, so a nested Acquire through any of them
        // counts up.
        // NOTE: a bind mount of the store under a second path still gets a second key.
        string key = Path.Combine(CanonicalPath(directory), name);
        Dictionary<string, Hold> threadHolds = heldByThread ??= new Dictionary<string, Hold>(StringComparer.Ordinal);
        lock (threadHolds)
        {
            if (threadHolds.TryGetValue(key, out Hold? existing))
            {
                existing.Count++;
                return new StoreFileLock(threadHolds, key, existing);
            }
        }

        int opened = Open(path, OpenFlags, ReadableByAll);
        if (opened < 0)
        {
            throw new IOException(
                $"Could not open the lock file '{path}' (errno {Marshal.GetLastPInvokeError()}). Check that this process can create files in the store directory.");
        }

        // Without this, the elapsed time would pass the -1 ms of InfiniteTimeSpan at the first try, so the wait would end
        // at once.
        if (timeout == Timeout.InfiniteTimeSpan)
        {
            timeout = null;
        }

        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        int operation = timeout is null ? Exclusive : Exclusive | NonBlocking;
        while (Flock(opened, operation) != 0)
        {
            int error = Marshal.GetLastPInvokeError();
            if (error == Interrupted)
            {
                continue;
            }

            if (error != WouldBlock || timeout is null)
            {
                _ = Close(opened);
                throw new IOException($"Could not lock '{path}' (errno {error}). Check that the store's file system supports flock.");
            }

            if (System.Diagnostics.Stopwatch.GetElapsedTime(started) >= timeout.Value)
            {
                _ = Close(opened);
                throw new TimeoutException(
                    $"Timed out after {timeout.Value.TotalSeconds:0.#} s waiting for the lock on '{path}', which another thread or process holds.");
            }

            Thread.Sleep(RetryInterval);
        }

        var newHold = new Hold(opened);
        lock (threadHolds)
        {
            threadHolds[key] = newHold;
        }

        return new StoreFileLock(threadHolds, key, newHold);
    }

    /// <summary>
    /// Releases this hold. The last of a thread's nested holds to be disposed, on whichever thread, closes the file and
    /// so releases the lock.
    /// </summary>
    // NOTE: re-entrancy is per thread. A hold kept across an await still excludes other processes, but while it is out
    // of its thread, a new Acquire on that thread counts up in place of waiting.
    public void Dispose()
    {
        if (heldBy is null || hold is null || Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        lock (heldBy)
        {
            if (--hold.Count > 0)
            {
                return;
            }

            heldBy.Remove(key);
        }

        _ = Close(hold.Descriptor);
    }

    // Resolves symlinks, "." and ".." with realpath(3), or returns the full path when the directory cannot be resolved.
    private static string CanonicalPath(string directory)
    {
        nint resolved = RealPath(directory, 0);
        if (resolved == 0)
        {
            return Path.GetFullPath(directory);
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved)!;
        }
        finally
        {
            Free(resolved);
        }
    }

    // An open lock file and how many nested holds of one thread share it.
    private sealed class Hold(int descriptor)
    {
        public int Descriptor { get; } = descriptor;

        public int Count { get; set; } = 1;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static partial int Flock(int descriptor, int operation);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int descriptor);

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint RealPath(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint pointer);
}
