using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Checkpoints;

/// <summary>
/// The contents of a file that the learner thread lays out from small managed values and the memory of CPU tensors, so
/// that a thread-pool task can write the file without copying the tensors and without calling TorchSharp. The learner
/// thread builds and disposes it, and must not change the tensors in between. <see cref="WriteFile"/> runs on any thread.
/// </summary>
internal sealed unsafe class TensorFileImage : IDisposable
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

    /// <summary>
    /// Writes the contents to a new file at <paramref name="path"/>. Does not flush to disk, because the checkpoint store
    /// flushes every file it contains before it commits the checkpoint.
    /// </summary>
    public void WriteFile(string path)
    {
        FlushPending();
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1 << 16);
        foreach (Segment segment in segments)
        {
            if (segment.Managed is { } managed)
            {
                file.Write(managed);
            }
            else
            {
                file.Write(new ReadOnlySpan<byte>((void*)segment.Pointer, segment.Length));
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
