using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Data;

/// <summary>Packs examples into batch tensors on a device. Callers own the returned tensors (use a dispose scope).</summary>
public static class TensorBatches
{
    /// <summary>Examples per forward pass of <see cref="Outputs"/>, which bounds the inputs in memory at once.</summary>
    public const int ForwardBatchSize = 1024;

    /// <summary>
    /// Returns <paramref name="module"/>'s outputs for <paramref name="examples"/> (one row each), computed without
    /// gradients in batches as <paramref name="batching"/> sets (<see cref="ForwardBatching.Default"/> when null).
    /// </summary>
    public static Tensor Outputs(nn.Module<Tensor, Tensor> module, IReadOnlyList<LabeledExample> examples, Device device, ForwardBatching? batching = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(examples);
        batching ??= ForwardBatching.Default;
        ArgumentOutOfRangeException.ThrowIfLessThan(batching.BatchSize, 1, nameof(batching));
        using var noGrad = torch.no_grad();
        var batches = new List<Tensor>();
        try
        {
            for (int start = 0; start < examples.Count; start += batching.BatchSize)
            {
                batching.BeforeBatch?.Invoke();
                using var scope = torch.NewDisposeScope();
                int count = Math.Min(batching.BatchSize, examples.Count - start);
                batches.Add(module.forward(Features(examples, start, count, device)).DetachFromDisposeScope());
            }

            return torch.cat(batches, 0);
        }
        finally
        {
            foreach (Tensor batch in batches)
            {
                batch.Dispose();
            }
        }
    }

    /// <summary>
    /// Returns the features of <paramref name="count"/> examples from <paramref name="start"/> as a [count, features] tensor.
    /// </summary>
    /// <exception cref="ArgumentException">An example has a different number of features than the first one.</exception>
    public static Tensor Features(IReadOnlyList<LabeledExample> examples, int start, int count, Device device)
    {
        ArgumentNullException.ThrowIfNull(examples);
        return ToDevice(Rows(examples, start, count, examples[start].Features.Length, example => example.Features), device);
    }

    /// <summary>
    /// Returns a float32 CPU tensor of shape [count, width] whose rows are the arrays that <paramref name="row"/> selects
    /// from <paramref name="items"/>, from <paramref name="start"/> on. The rows are copied straight into the tensor's
    /// memory, so no managed buffer is allocated. A managed buffer of 32 Fashion-MNIST images takes 100 KB, which the
    /// GC places on the large object heap, and allocations there start full (generation 2) collections.
    /// </summary>
    /// <exception cref="ArgumentException">A selected array does not have <paramref name="width"/> elements.</exception>
    internal static Tensor Rows<T>(IReadOnlyList<T> items, int start, int count, int width, Func<T, float[]> row)
    {
        Tensor rows = torch.empty([count, width], ScalarType.Float32);
        Span<float> values = MemoryMarshal.Cast<byte, float>(rows.bytes);
        for (int index = 0; index < count; index++)
        {
            float[] source = row(items[start + index]);
            if (source.Length != width)
            {
                rows.Dispose();
                throw new ArgumentException($"Example {start + index} has {source.Length} values, but the batch has {width} per example.", nameof(items));
            }

            source.CopyTo(values.Slice(index * width, width));
        }

        return rows;
    }

    /// <summary>Returns the labels of <paramref name="count"/> examples from <paramref name="start"/> as an int64 tensor.</summary>
    public static Tensor Labels(IReadOnlyList<LabeledExample> examples, int start, int count, Device device)
    {
        ArgumentNullException.ThrowIfNull(examples);
        Tensor labels = torch.empty([count], ScalarType.Int64);
        Span<long> values = MemoryMarshal.Cast<byte, long>(labels.bytes);
        for (int index = 0; index < count; index++)
        {
            values[index] = examples[start + index].Label;
        }

        return ToDevice(labels, device);
    }

    public static Tensor ToDevice(Tensor tensor, Device device)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return device.type == DeviceType.CPU ? tensor : tensor.to(device);
    }
}
