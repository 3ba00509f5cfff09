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

    private int descriptor;

    private StoreFileLock(int descriptor) => this.descriptor = descriptor;

    /// <summary>
    /// Waits for the lock on <paramref name="directory"/>/<paramref name="name"/>, creating the file when it is missing.
    /// The file is opened read-only, so processes of other users that can read the store can lock it too.
    /// </summary>
    // NOTE: only Linux takes the lock. Elsewhere this returns at once and excludes nothing.
    public static StoreFileLock Acquire(string directory, string name)
    {
        if (!OperatingSystem.IsLinux())
        {
            return new StoreFileLock(-1);
        }

        string path = Path.Combine(directory, name);
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

        return new StoreFileLock(opened);
    }

    /// <summary>Releases the lock by closing the file.</summary>
    public void Dispose()
    {
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
