using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Checkpoints;

/// <summary>
/// The contents of a file that the learner thread lays out from small managed values and the memory of CPU tensors, so
/// that a thread-pool task can write the file without copying the tensors and without calling TorchSharp. The learner
/// thread builds and disposes it, and must not change the tensors in between. <see cref="WriteFile"/> runs on any thread.
/// </summary>
internal sealed unsafe class TensorFileImage : IFileImage
{
    // Each write moves at most 1 GiB, because a Span's length is an int.
    private const long MaxSliceBytes = 1L << 30;

    private readonly List<Segment> segments = [];
    private readonly List<Tensor> owned = [];
    private readonly MemoryStream pending = new();
    private readonly BinaryWriter writer;

    public TensorFileImage()
    {
        writer = new BinaryWriter(pending);
    }

    /// <inheritdoc/>
    public long Length
    {
        get
        {
            writer.Flush();
            return segments.Sum(segment => segment.Managed?.LongLength ?? segment.Length) + pending.Length;
        }
    }

    /// <summary>The writer of the managed values, which go into the file in order with the tensors.</summary>
    public BinaryWriter Writer => writer;

    /// <summary>
    /// Appends the raw bytes of <paramref name="values"/>, a contiguous CPU tensor that this image owns from now on and
    /// disposes. Nothing changes the tensor's memory while the image exists, so the bytes are not copied.
    /// </summary>
    public void AppendTensor(Tensor values)
    {
        ArgumentNullException.ThrowIfNull(values);
        owned.Add(values);
        if (!values.is_contiguous() || values.device_type != DeviceType.CPU)
        {
            throw new ArgumentException("The tensor must be contiguous and in CPU memory.", nameof(values));
        }

        FlushPending();
        long count = values.numel();
        if (count == 0)
        {
            return;
        }

        // A tensor's bytes are one Span, so a tensor of more than 2 GiB is taken in slices of MaxSliceBytes.
        using Tensor flat = values.view(-1);
        long elementsPerSlice = Math.Max(1, MaxSliceBytes / values.ElementSize);
        for (long start = 0; start < count; start += elementsPerSlice)
        {
            using Tensor slice = flat.narrow(0, start, Math.Min(elementsPerSlice, count - start));
            Span<byte> bytes = slice.bytes;
            fixed (byte* pointer = bytes)
            {
                segments.Add(new Segment(null, (IntPtr)pointer, bytes.Length));
            }
        }
    }

    /// <inheritdoc/>
    public void WriteFile(string path)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1 << 16);
        CopyTo(file);
    }

    /// <summary>
    /// Copies the contents into native memory, so that the tensors may change, or be disposed with this image, while a
    /// thread-pool task writes the copy.
    /// </summary>
    public NativeBufferStream ToBuffer()
    {
        var copy = new NativeBufferStream(Math.Max(Length, 1));
        try
        {
            CopyTo(copy);
            return copy;
        }
        catch
        {
            copy.Dispose();
            throw;
        }
    }

    private void CopyTo(Stream destination)
    {
        FlushPending();
        foreach (Segment segment in segments)
        {
            if (segment.Managed is { } managed)
            {
                destination.Write(managed);
            }
            else
            {
                destination.Write(new ReadOnlySpan<byte>((void*)segment.Pointer, segment.Length));
            }
        }
    }

    public void Dispose()
    {
        foreach (Tensor tensor in owned)
        {
            tensor.Dispose();
        }

        owned.Clear();
        segments.Clear();
        writer.Dispose();
    }

    private void FlushPending()
    {
        writer.Flush();
        if (pending.Length > 0)
        {
            segments.Add(new Segment(pending.ToArray(), IntPtr.Zero, 0));
            pending.SetLength(0);
        }
    }

    // Either managed bytes or a range of a tensor's memory.
    private readonly record struct Segment(byte[]? Managed, IntPtr Pointer, int Length);
}
