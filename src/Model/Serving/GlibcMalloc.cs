using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace ContinualServe.Model.Serving;

/// <summary>
/// Readings and controls of glibc's malloc, which libtorch's CPU tensors take their memory from. Where libc or an
/// entry point is missing (musl, macOS, glibc before 2.33 for <c>mallinfo2</c>), the readings return -1 and the trim
/// returns false.
/// </summary>
public static partial class GlibcMalloc
{
    private static volatile bool trimMissing;

    /// <summary>
    /// Bytes that malloc has handed out and not yet had back, summed over every arena, or -1 where it cannot be read.
    /// Unlike RSS, it leaves out memory that malloc keeps free for reuse, so it grows only while allocations outlive
    /// their use.
    /// </summary>
    public static long BytesInUse()
    {
        try
        {
            MallocInfo info = ReadMallocInfo();
            return (long)(info.InUseBytes + info.MappedBytes);
        }
        catch (Exception exception) when (exception is DllNotFoundException or EntryPointNotFoundException)
        {
            return -1;
        }
    }

    /// <summary>
    /// Returns the free pages of every arena to the system (<c>malloc_trim(0)</c>). Freed tensors leave free blocks
    /// that malloc keeps resident for reuse, and when they are spread over several threads' arenas, RSS can climb with
    /// every model swap although nothing leaks. Returns false where the call is missing or released nothing.
    /// </summary>
    public static bool Trim()
    {
        if (trimMissing)
        {
            return false;
        }

        try
        {
            return MallocTrim(0) != 0;
        }
        catch (Exception exception) when (exception is DllNotFoundException or EntryPointNotFoundException)
        {
            trimMissing = true;
            return false;
        }
    }

    /// <summary>This process's resident memory in bytes: VmRSS on Linux, the working set elsewhere.</summary>
    public static long ResidentBytes()
    {
        const string statusPath = "/proc/self/status";
        if (File.Exists(statusPath))
        {
            foreach (string line in File.ReadLines(statusPath))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    // The kernel writes the value in kB, which means KiB.
                    string kibibytes = line["VmRSS:".Length..].Trim().Split(' ')[0];
                    return long.Parse(kibibytes, CultureInfo.InvariantCulture) * 1024;
                }
            }
        }

        using var process = Process.GetCurrentProcess();
        return process.WorkingSet64;
    }

    [LibraryImport("libc", EntryPoint = "mallinfo2")]
    private static partial MallocInfo ReadMallocInfo();

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);

    // struct mallinfo2 in glibc's malloc.h: ten size_t fields, of which uordblks (bytes in chunks in use) and
    // hblkhd (bytes in chunks that malloc mapped on their own) make up what the program holds.
    [StructLayout(LayoutKind.Sequential)]
    private struct MallocInfo
    {
        public nuint Arena;
        public nuint FreeChunks;
        public nuint FastBins;
        public nuint MappedRegions;
        public nuint MappedBytes;
        public nuint MaxTotalAllocated;
        public nuint FastBinFreeBytes;
        public nuint InUseBytes;
        public nuint FreeBytes;
        public nuint TopReleasableBytes;
    }
}
