using System.Runtime.InteropServices;

namespace ContinualServe.Learner.Checkpoints;

/// <summary>
/// A seekable stream over a growable block of native memory, which holds a whole file so that the learner thread can
/// deserialize or serialize TorchSharp state while a thread-pool task reads or writes the file. Unlike
/// <see cref="MemoryStream"/>, whose capacity is an int, it stores files of 2 GiB and more. Not thread-safe: one thread
/// uses it at a time, and a task that reads the file into it, or writes it out, hands it over when the task ends.
/// </summary>
internal sealed unsafe class NativeBufferStream : Stream, IFileImage
{
    // Each read or write call moves at most 1 GiB, because a Span's length is an int.
    private const int MaxChunkBytes = 1 << 30;

    private byte* buffer;
    private long capacity;
    private long length;
    private long position;

    public NativeBufferStream(long initialCapacity = 1 << 16)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(initialCapacity, 1);
        buffer = (byte*)NativeMemory.Alloc((nuint)initialCapacity);
        capacity = initialCapacity;
    }

    public override bool CanRead => buffer is not null;

    public override bool CanSeek => buffer is not null;

    public override bool CanWrite => buffer is not null;

    public override long Length => length;

    public override long Position
    {
        get => position;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            position = value;
        }
    }

    /// <summary>Reads the whole file at <paramref name="path"/> into a new stream positioned at its start.</summary>
    /// <exception cref="IOException">The file cannot be read, or it became shorter during the read.</exception>
    public static NativeBufferStream ReadFile(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan);
        long fileLength = file.Length;
        var contents = new NativeBufferStream(Math.Max(fileLength, 1));
        try
        {
            while (contents.length < fileLength)
            {
                int requested = (int)Math.Min(MaxChunkBytes, fileLength - contents.length);
                int read = file.Read(new Span<byte>(contents.buffer + contents.length, requested));
                if (read == 0)
                {
                    throw new EndOfStreamException($"{path} ended after {contents.length} of its {fileLength} bytes while it was read.");
                }

                contents.length += read;
            }

            return contents;
        }
        catch
        {
            contents.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes the whole contents, whatever the position, to a new file at <paramref name="path"/>. Does not flush to
    /// disk, because the checkpoint store flushes every file it contains before it commits the checkpoint.
    /// </summary>
    public void WriteFile(string path)
    {
        ObjectDisposedException.ThrowIf(buffer is null, this);
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        for (long written = 0; written < length; written += MaxChunkBytes)
        {
            file.Write(new ReadOnlySpan<byte>(buffer + written, (int)Math.Min(MaxChunkBytes, length - written)));
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(buffer is null, this);
        int count = (int)Math.Clamp(length - position, 0, destination.Length);
        new ReadOnlySpan<byte>(buffer + position, count).CopyTo(destination);
        position += count;
        return count;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(new ReadOnlySpan<byte>(buffer, offset, count));

    public override void Write(ReadOnlySpan<byte> source)
    {
        ObjectDisposedException.ThrowIf(buffer is null, this);
        long end = position + source.Length;
        EnsureCapacity(end);
        if (position > length)
        {
            // A seek past the end leaves a gap, which reads as zeros as in a MemoryStream.
            NativeMemory.Clear(buffer + length, (nuint)(position - length));
        }

        source.CopyTo(new Span<byte>(buffer + position, source.Length));
        position = end;
        length = Math.Max(length, end);
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        long target = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => position + offset,
            SeekOrigin.End => length + offset,
            _ => throw new ArgumentOutOfRangeException(nameof(origin), origin, "Not a SeekOrigin value."),
        };
        Position = target;
        return target;
    }

    public override void SetLength(long value)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(value);
        EnsureCapacity(value);
        if (value > length)
        {
            NativeMemory.Clear(buffer + length, (nuint)(value - length));
        }

        length = value;
        position = Math.Min(position, length);
    }

    public override void Flush()
    {
    }

    protected override void Dispose(bool disposing)
    {
        if (buffer is not null)
        {
            NativeMemory.Free(buffer);
            buffer = null;
            capacity = 0;
            length = 0;
            position = 0;
        }

        base.Dispose(disposing);
    }

    // Doubles the capacity, so a file written in many small writes is copied O(log n) times.
    private void EnsureCapacity(long needed)
    {
        if (needed <= capacity)
        {
            return;
        }

        long grown = Math.Max(needed, capacity * 2);
        buffer = (byte*)NativeMemory.Realloc(buffer, (nuint)grown);
        capacity = grown;
    }
}
