using ContinualServe.Learner.Data;
using ContinualServe.Learner.Replay;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Training;

/// <summary>Packs replay samples into tensors and augments them. Callers own the returned tensors.</summary>
internal static class ReplayTensors
{
    public static Tensor Features(IReadOnlyList<ReplayExample> sample, int featureCount, Device device) =>
        TensorBatches.ToDevice(TensorBatches.Rows(sample, 0, sample.Count, featureCount, example => example.Features), device);

    public static Tensor Logits(IReadOnlyList<ReplayExample> sample, int classCount, Device device) =>
        TensorBatches.ToDevice(TensorBatches.Rows(sample, 0, sample.Count, classCount, example => example.Logits), device);

    public static Tensor Labels(IReadOnlyList<ReplayExample> sample, Device device) =>
        TensorBatches.ToDevice(torch.tensor(sample.Select(example => (long)example.Label).ToArray()), device);

    /// <summary>
    /// Shifts each square image of <paramref name="features"/> (shape [n, side * side]) by a random offset of up to
    /// <paramref name="maxPixels"/> in each direction, filling with zeros. Returns the input unchanged when
    /// <paramref name="maxPixels"/> is 0 or the features are not a square image.
    /// </summary>
    public static Tensor Shift(Tensor features, int maxPixels, Random random)
    {
        long featureCount = features.shape[1];
        long side = (long)Math.Round(Math.Sqrt(featureCount));
        if (maxPixels <= 0 || side * side != featureCount)
        {
            return features;
        }

        long count = features.shape[0];
        Tensor padded = nn.functional.pad(features.view(count, 1, side, side), [maxPixels, maxPixels, maxPixels, maxPixels]);
        var shifted = new Tensor[count];
        for (int index = 0; index < count; index++)
        {
            int top = random.Next((2 * maxPixels) + 1);
            int left = random.Next((2 * maxPixels) + 1);
            shifted[index] = padded[index].narrow(1, top, side).narrow(2, left, side);
        }

        return torch.stack(shifted).reshape(count, featureCount);
    }
}
