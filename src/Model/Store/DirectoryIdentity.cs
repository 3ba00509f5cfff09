using System.Runtime.InteropServices;

namespace ContinualServe.Model.Store;

/// <summary>
/// The device, inode and birth time that a directory had when a store opened it. A later check compares them with
/// what the path leads to now, which differs for a directory moved or copied into place, or created after a rename.
/// </summary>
/// <remarks>
/// Each process records the directory it opened, so processes that share a store need no shared file, and a read-only
/// mount works as well. The birth time guards against a file system that gives a new directory the inode number of a
/// removed one. File systems that do not report it are compared by device and inode only.
/// NOTE: only Linux reads the identity (statx, glibc 2.28 or later). Elsewhere <see cref="EnsureUnchanged"/> checks nothing.
/// </remarks>
internal sealed partial class DirectoryIdentity
{
    private const int CurrentDirectory = -100; // AT_FDCWD
    private const uint TypeMask = 0x1; // STATX_TYPE
    private const uint InodeMask = 0x100; // STATX_INO
    private const uint BirthTimeMask = 0x800; // STATX_BTIME
    private const int StatxSize = 256;
    private const int FileTypeMask = 0xF000; // S_IFMT
    private const int DirectoryType = 0x4000; // S_IFDIR
    private const int NoSuchFile = 2; // ENOENT
    private const int NotADirectory = 20; // ENOTDIR

    private readonly string description;
    private readonly Stamp? opened;

    private DirectoryIdentity(string path, string description, Stamp? opened)
    {
        Path = path;
        this.description = description;
        this.opened = opened;
    }

    public string Path { get; }

    /// <summary>Records the identity of the existing directory <paramref name="path"/>.</summary>
    /// <param name="description">What the directory is, for messages: "model store directory".</param>
    /// <exception cref="IOException">The directory cannot be read.</exception>
    public static DirectoryIdentity Record(string path, string description)
    {
        if (!OperatingSystem.IsLinux())
        {
            return new DirectoryIdentity(path, description, null);
        }

        return new DirectoryIdentity(path, description, Read(path, out int error)
            ?? throw new IOException($"Failed to read the {description} '{path}' (errno {error}). Check that it exists and is readable."));
    }

    /// <summary>
    /// Throws <see cref="StoreDirectoryChangedException"/> when <see cref="Path"/> no longer leads to the directory that
    /// <see cref="Record"/> read. One statx call.
    /// </summary>
    public void EnsureUnchanged()
    {
        if (opened is null)
        {
            return;
        }

        Stamp? now = Read(Path, out int error);
        if (now is null && error is NoSuchFile or NotADirectory)
        {
            throw new StoreDirectoryChangedException(
                Path,
                $"The {description} '{Path}' no longer exists: it was removed or renamed after this process opened it, so "
                + "nothing more is written there and it is not created again. Move the directory back, or restart the process "
                + "to open the directory now at that path.");
        }

        if (now is null)
        {
            throw new IOException($"Failed to read the {description} '{Path}' (errno {error}). Check that it exists and is readable.");
        }

        if (now != opened)
        {
            string replacement = now.Value.IsDirectory ? "another directory" : "a file that is not a directory";
            throw new StoreDirectoryChangedException(
                Path,
                $"The {description} '{Path}' was replaced by {replacement} after this process opened it "
                + $"(opened {opened}, now {now}), so nothing more is written there. Move the original directory back, "
                + "or restart the process to open the directory now at that path.");
        }
    }

    // Returns null with the errno when statx fails. The layout of struct statx is the same on every Linux architecture.
    private static unsafe Stamp? Read(string path, out int error)
    {
        byte* buffer = stackalloc byte[StatxSize];
        if (Statx(CurrentDirectory, path, 0, TypeMask | InodeMask | BirthTimeMask, buffer) != 0)
        {
            error = Marshal.GetLastPInvokeError();
            return null;
        }

        error = 0;
        var fields = new ReadOnlySpan<byte>(buffer, StatxSize);
        uint mask = ReadUInt32(fields, 0);
        return new Stamp(
            IsDirectory: (BitConverter.ToUInt16(fields[28..]) & FileTypeMask) == DirectoryType,
            DeviceMajor: ReadUInt32(fields, 136),
            DeviceMinor: ReadUInt32(fields, 140),
            Inode: (mask & InodeMask) != 0 ? ReadUInt64(fields, 32) : 0,
            BirthSeconds: (mask & BirthTimeMask) != 0 ? ReadInt64(fields, 80) : 0,
            BirthNanoseconds: (mask & BirthTimeMask) != 0 ? ReadUInt32(fields, 88) : 0);
    }

    private static uint ReadUInt32(ReadOnlySpan<byte> fields, int offset) =>
        BitConverter.ToUInt32(fields[offset..]);

    private static ulong ReadUInt64(ReadOnlySpan<byte> fields, int offset) =>
        BitConverter.ToUInt64(fields[offset..]);

    private static long ReadInt64(ReadOnlySpan<byte> fields, int offset) =>
        BitConverter.ToInt64(fields[offset..]);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Statx(int directoryDescriptor, string path, int flags, uint mask, byte* buffer);

    private readonly record struct Stamp(bool IsDirectory, uint DeviceMajor, uint DeviceMinor, ulong Inode, long BirthSeconds, uint BirthNanoseconds)
    {
        public override string ToString() => BirthSeconds == 0
            ? $"device {DeviceMajor}:{DeviceMinor}, inode {Inode}"
            : $"device {DeviceMajor}:{DeviceMinor}, inode {Inode}, created {DateTimeOffset.FromUnixTimeSeconds(BirthSeconds):O}";
    }
}
