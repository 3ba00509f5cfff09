using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Data;

/// <summary>Packs examples into batch tensors on a device. Callers own the returned tensors (use a dispose scope).</summary>
public static class TensorBatches
{
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
