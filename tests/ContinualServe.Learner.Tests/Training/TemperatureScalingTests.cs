using ContinualServe.Learner.Training;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Training;

public sealed class TemperatureScalingTests
{
    [Theory]
    [InlineData(0.5)]
    [InlineData(4.0)]
    [InlineData(20.0)]
    public void FitRecoversSamplingScale(double trueScale)
    {
        // Labels drawn from softmax(trueScale x logits): the likelihood is highest near that scale.
        const int count = 20_000;
        const int classes = 5;
        var random = new Random(11);
        float[] values = Enumerable.Range(0, count * classes).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        long[] drawn = new long[count];
        for (int row = 0; row < count; row++)
        {
            double[] weights = Enumerable.Range(0, classes).Select(column => Math.Exp(trueScale * values[(row * classes) + column])).ToArray();
            double target = random.NextDouble() * weights.Sum();
            int label = 0;
            for (double cumulative = weights[0]; cumulative < target && label < classes - 1; cumulative += weights[label])
            {
                label++;
            }

            drawn[row] = label;
        }

        using Tensor logits = torch.tensor(values, [count, classes]);
        using Tensor labels = torch.tensor(drawn);

        double scale = TemperatureScaling.FitScale(logits, labels);

        scale.ShouldBe(trueScale, tolerance: trueScale * 0.15);
    }

    [Fact]
    public void SeparableLabelsGetLargeScale()
    {
        using Tensor logits = torch.tensor(new float[] { 1, 0, 0, 1, 0.6f, 0.4f }, [3, 2]);
        using Tensor labels = torch.tensor(new long[] { 0, 1, 0 });

        // The loss falls as the factor grows, so the search ends at its upper bound.
        TemperatureScaling.FitScale(logits, labels).ShouldBe(TemperatureScaling.MaxScale, tolerance: 1e-3);
    }

    [Fact]
    public void MismatchedShapesAreRejected()
    {
        using Tensor logits = torch.zeros(4, 3);
        using Tensor labels = torch.zeros(3, ScalarType.Int64);

        Should.Throw<ArgumentException>(() => TemperatureScaling.FitScale(logits, labels)).Message.ShouldContain("[4, 3]");
    }
}
