using System.Runtime.InteropServices;
using System.Text;

namespace ContinualServe.Server.Distribution;

/// <summary>
/// Exclusive flock on the lock file inside a download's temporary directory, which the downloading process holds until
/// the directory is moved into place or deleted. The kernel releases it when the process ends, however it ends, so a
/// directory whose lock can be taken belongs to no running download, on this host or on any host that shares the
/// volume. Each instance opens its own file description, so two holders in one process exclude each other too.
/// </summary>
/// <remarks>
/// Only Linux takes the lock. Elsewhere, and on a file system whose flock fails with an error other than
/// EWOULDBLOCK, <see cref="Create"/> holds nothing and <see cref="TryTake"/> returns <see cref="LockState.Unknown"/>.
/// </remarks>
internal sealed class DownloadLock : IDisposable
{
    /// <summary>Name of the lock file in a temporary download directory.</summary>
    public const string FileName = ".download.lock";

    private const int ReadOnly = 0; // O_RDONLY
    private const int ReadWrite = 2; // O_RDWR
    private const int CreateFlag = 0x40; // O_CREAT on Linux
    private const int CloseOnExec = 0x80000; // O_CLOEXEC on Linux
    private const int Exclusive = 2; // LOCK_EX
    private const int NonBlocking = 4; // LOCK_NB
    private const int NoSuchFile = 2; // ENOENT
    private const int AccessDenied = 13; // EACCES
    private const int Interrupted = 4; // EINTR
    private const int WouldBlock = 11; // EWOULDBLOCK on Linux
    private const uint ReadableByAll = 0x1A4; // 0644

    private int descriptor;

    private DownloadLock(int descriptor)
    {
        this.descriptor = descriptor;
    }

    /// <summary>State of a download directory's lock, as <see cref="TryTake"/> found it.</summary>
    public enum LockState
    {
        /// <summary>The lock was free and the caller now holds it, so no running process downloads into the directory.</summary>
        Taken,

        /// <summary>Another open file description holds the lock: a download is running.</summary>
        Held,

        /// <summary>The directory has no lock file: a release that predates the lock made it, or its download is just starting.</summary>
        Missing,

        /// <summary>The lock cannot be checked on this platform or file system.</summary>
        Unknown,
    }

    /// <summary>
    /// Creates the lock file in the new download directory <paramref name="directory"/> and takes its lock without waiting.
    /// </summary>
    /// <exception cref="IOException">
    /// The lock file cannot be created (HResult is the errno), or a cleanup took the lock first and deleted the directory.
    /// </exception>
    public static DownloadLock Create(string directory)
    {
        if (!OperatingSystem.IsLinux())
        {
            return new DownloadLock(-1);
        }

        string path = Path.Combine(directory, FileName);

        // Opened for writing because NFS emulates flock with byte-range locks, and an exclusive one needs a writable
        // descriptor there (flock(2), Linux 2.6.12 and later).
        int opened = Open(NullTerminated(path), ReadWrite | CreateFlag | CloseOnExec, ReadableByAll);
        if (opened < 0)
        {
            int error = Marshal.GetLastPInvokeError();
            throw new IOException($"Could not create the download lock file '{path}' (errno {error}).", error);
        }

        int lockError = LockWithoutWaiting(opened);
        if (lockError == WouldBlock || (lockError == 0 && !Directory.Exists(directory)))
        {
            // A replica's cleanup found the new lock file before this process locked it, and deleted the directory.
            _ = Close(opened);
            throw new IOException($"The temporary download directory '{directory}' was deleted by another process as it was created.");
        }

        if (lockError != 0)
        {
            // NOTE: the download goes on unprotected, and cleanups fall back to the age of the directory's files.
            _ = Close(opened);
            return new DownloadLock(-1);
        }

        return new DownloadLock(opened);
    }

    /// <summary>
    /// Takes the lock of the existing download directory <paramref name="directory"/> without waiting and without
    /// creating a lock file. The caller disposes <paramref name="taken"/>, set only for <see cref="LockState.Taken"/>.
    /// </summary>
    public static LockState TryTake(string directory, out DownloadLock? taken)
    {
        taken = null;
        if (!OperatingSystem.IsLinux())
        {
            return LockState.Unknown;
        }

        // A lock file of another user can only be read, which still takes the lock on a local file system.
        byte[] path = NullTerminated(Path.Combine(directory, FileName));
        int opened = Open(path, ReadWrite | CloseOnExec, 0);
        if (opened < 0 && Marshal.GetLastPInvokeError() == AccessDenied)
        {
            opened = Open(path, ReadOnly | CloseOnExec, 0);
        }

        if (opened < 0)
        {
            return Marshal.GetLastPInvokeError() == NoSuchFile ? LockState.Missing : LockState.Unknown;
        }

        int error = LockWithoutWaiting(opened);
        if (error == 0)
        {
            taken = new DownloadLock(opened);
            return LockState.Taken;
        }

        _ = Close(opened);
        return error == WouldBlock ? LockState.Held : LockState.Unknown;
    }

    /// <summary>Releases the lock by closing the lock file. The lock file itself stays where it is.</summary>
    public void Dispose()
    {
        int held = Interlocked.Exchange(ref descriptor, -1);
        if (held >= 0)
        {
            _ = Close(held);
        }
    }

    // Returns 0 when the lock was taken, else the errno of flock.
    private static int LockWithoutWaiting(int opened)
    {
        while (Flock(opened, Exclusive | NonBlocking) != 0)
        {
            int error = Marshal.GetLastPInvokeError();
            if (error != Interrupted)
            {
                return error;
            }
        }

        return 0;
    }

    // The Server project does not allow unsafe code, which LibraryImport's string marshalling needs, so paths are passed
    // as null-terminated UTF-8 bytes.
    private static byte[] NullTerminated(string path) => Encoding.UTF8.GetBytes(path + "\0");

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open(byte[] path, int flags, uint mode);

    [DllImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static extern int Flock(int descriptor, int operation);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int descriptor);
}
