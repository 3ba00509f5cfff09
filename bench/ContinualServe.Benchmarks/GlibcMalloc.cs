using System.Runtime.InteropServices;

namespace ContinualServe.Benchmarks;

/// <summary>
/// Bytes that glibc's malloc has handed out and not yet had back, from <c>mallinfo2</c> (glibc 2.33 and later), summed
/// over every arena. Unlike RSS, it leaves out memory that malloc keeps free for reuse, so it grows only while
/// allocations outlive their use. Reads -1 where libc or <c>mallinfo2</c> is missing (musl, macOS, glibc before 2.33).
/// </summary>
internal static partial class GlibcMalloc
{
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

    [LibraryImport("libc", EntryPoint = "mallinfo2")]
    private static partial MallocInfo ReadMallocInfo();

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
