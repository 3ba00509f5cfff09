using System.Runtime.InteropServices;

namespace ContinualServe.Model.Store;

/// <summary>Durability helpers: fsync of files and directories, so that a rename survives a power loss.</summary>
internal static partial class FileSync
{
    private const int ReadOnlyDirectory = 0x10000; // O_RDONLY | O_DIRECTORY on Linux
    private const string TemporaryFileSuffix = ".tmp";
    private const int AllPermissions = 0x1FF; // 0777, narrowed by the umask as Directory.CreateDirectory does
    private const int NoSuchFile = 2; // ENOENT

    public static void WriteAllBytesDurably(string path, ReadOnlySpan<byte> content)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        stream.Write(content);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>
    /// Replaces <paramref name="directory"/>/<paramref name="name"/> with <paramref name="content"/> atomically: writes a
    /// temporary file beside it, flushes it, renames it into place and flushes the directory. A failed write (a full or
    /// read-only volume) deletes the temporary file and rethrows, so the previous file stays as it was.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">
    /// <paramref name="directory"/> does not exist. It is not created, so a store directory removed while a process uses
    /// it is not created again by the process's next write.
    /// </exception>
    public static void WriteAtomically(string directory, string name, ReadOnlySpan<byte> content)
    {
        string temporary = Path.Combine(directory, $".{name}.{Guid.NewGuid():N}{TemporaryFileSuffix}");
        try
        {
            WriteAllBytesDurably(temporary, content);
            File.Move(temporary, Path.Combine(directory, name), overwrite: true);
        }
        catch (DirectoryNotFoundException exception) when (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException(
                $"Could not write {name}, because the directory '{directory}' does not exist. It is not created again. "
                + "Move the directory back, or restart the process to open the directory now at that path.",
                exception);
        }
        catch
        {
            TryDeleteFile(temporary);
            throw;
        }

        FlushDirectory(directory);
    }

    /// <summary>
    /// Deletes the temporary files that <see cref="WriteAtomically"/> left in <paramref name="directory"/> when the process
    /// stopped mid-write. Files changed in the last <paramref name="minimumAge"/> are kept, because another process sharing
    /// the directory may be writing them now.
    /// </summary>
    public static void RemoveAbandonedTemporaryFiles(string directory, TimeSpan minimumAge)
    {
        DateTime cutoff = DateTime.UtcNow - minimumAge;
        foreach (string path in Directory.EnumerateFiles(directory, ".*" + TemporaryFileSuffix))
        {
            if (File.GetLastWriteTimeUtc(path) < cutoff)
            {
                TryDeleteFile(path);
            }
        }
    }

    /// <summary>
    /// Creates the directory <paramref name="path"/> inside an existing parent. Unlike
    /// <see cref="Directory.CreateDirectory(string)"/> it creates no missing parent, so a write into a store directory
    /// that was removed fails in place of creating the store directory again (Linux only; elsewhere parents are created).
    /// </summary>
    public static void CreateDirectoryInExistingParent(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            Directory.CreateDirectory(path);
            return;
        }

        if (MakeDirectory(path, AllPermissions) != 0)
        {
            int error = Marshal.GetLastPInvokeError();
            throw error == NoSuchFile
                ? new DirectoryNotFoundException($"Could not create directory '{path}' because its parent directory does not exist.")
                : new IOException($"Could not create directory '{path}' (errno {error}).");
        }
    }

    public static void FlushFile(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Flushes a directory's entries to disk (Linux only; elsewhere a no-op).</summary>
    public static void FlushDirectory(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        int descriptor = Open(path, ReadOnlyDirectory);
        if (descriptor < 0)
        {
            throw new IOException($"Could not open directory '{path}' to flush it (errno {Marshal.GetLastPInvokeError()}).");
        }

        try
        {
            if (Fsync(descriptor) != 0)
            {
                throw new IOException($"fsync of directory '{path}' failed (errno {Marshal.GetLastPInvokeError()}).");
            }
        }
        finally
        {
            _ = Close(descriptor);
        }
    }

    // A file that cannot be deleted is left for the next start's cleanup. A failed write rethrows its own error instead.
    private static void TryDeleteFile(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "mkdir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MakeDirectory(string path, int mode);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int descriptor);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int descriptor);
}
