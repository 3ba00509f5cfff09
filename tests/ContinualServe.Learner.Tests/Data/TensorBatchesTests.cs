using ContinualServe.Learner.Data;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Data;

public sealed class TensorBatchesTests
{
    private const int FeatureCount = 784;

    [Fact]
    public void FeaturesCopiesRowsFromStart()
    {
        LabeledExample[] examples = Examples(5);
        using var scope = torch.NewDisposeScope();

        Tensor features = TensorBatches.Features(examples, 1, 3, CPU);

        features.shape.ShouldBe([3, FeatureCount]);
        features.dtype.ShouldBe(ScalarType.Float32);
        float[] values = features.data<float>().ToArray();
        for (int row = 0; row < 3; row++)
        {
            values.AsSpan(row * FeatureCount, FeatureCount).ToArray().ShouldBe(examples[row + 1].Features);
        }
    }

    [Fact]
    public void LabelsCopiesLabelsFromStart()
    {
        LabeledExample[] examples = Examples(5);
        using var scope = torch.NewDisposeScope();

        Tensor labels = TensorBatches.Labels(examples, 2, 3, CPU);

        labels.dtype.ShouldBe(ScalarType.Int64);
        labels.data<long>().ToArray().ShouldBe([2L, 3L, 4L]);
    }

    [Fact]
    public void FeaturesAllocateNoBatchBuffer()
    {
        LabeledExample[] examples = Examples(32);
        using (torch.NewDisposeScope())
        {
            // The first call compiles the method and allocates what the runtime needs once.
            _ = TensorBatches.Features(examples, 0, 32, CPU);
            _ = TensorBatches.Labels(examples, 0, 32, CPU);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        using (torch.NewDisposeScope())
        {
            _ = TensorBatches.Features(examples, 0, 32, CPU);
            _ = TensorBatches.Labels(examples, 0, 32, CPU);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        // A managed copy of the batch would take 32 * 784 * 4 = 100,352 bytes.
        allocated.ShouldBeLessThan(8 * 1024);
    }

    [Fact]
    public void FeaturesRejectsRowOfOtherLength()
    {
        LabeledExample[] examples = [.. Examples(2), new LabeledExample("short", 1, 0, new float[FeatureCount - 1])];
        using var scope = torch.NewDisposeScope();

        ArgumentException error = Should.Throw<ArgumentException>(() => TensorBatches.Features(examples, 0, 3, CPU));

        error.Message.ShouldContain("Example 2 has 783 values");
    }

    private static LabeledExample[] Examples(int count) =>
        Enumerable.Range(0, count)
            .Select(index => new LabeledExample(
                $"example-{index}",
                1,
                index,
                Enumerable.Range(0, FeatureCount).Select(pixel => (float)((index * 31) + pixel) % 256).ToArray()))
            .ToArray();
}
