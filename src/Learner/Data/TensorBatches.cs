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

    public static Tensor Features(IReadOnlyList<LabeledExample> examples, int start, int count, Device device)
    {
        ArgumentNullException.ThrowIfNull(examples);
        int featureCount = examples[start].Features.Length;
        var buffer = new float[count * featureCount];
        for (int index = 0; index < count; index++)
        {
            examples[start + index].Features.CopyTo(buffer, index * featureCount);
        }

        return ToDevice(torch.tensor(buffer, [count, featureCount]), device);
    }

    public static Tensor Labels(IReadOnlyList<LabeledExample> examples, int start, int count, Device device)
    {
        ArgumentNullException.ThrowIfNull(examples);
        var labels = new long[count];
        for (int index = 0; index < count; index++)
        {
            labels[index] = examples[start + index].Label;
        }

        return ToDevice(torch.tensor(labels), device);
    }

    public static Tensor ToDevice(Tensor tensor, Device device)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return device.type == DeviceType.CPU ? tensor : tensor.to(device);
    }
}
