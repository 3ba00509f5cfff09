using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Training;

/// <summary>
/// Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", 2017): the one factor that multiplies
/// every logit so that the softmax's probabilities best match held-out labels. It leaves each argmax, and so the
/// accuracy, unchanged.
/// </summary>
public static class TemperatureScaling
{
    /// <summary>Smallest factor searched: a temperature of 20, which flattens every softmax to near uniform.</summary>
    public const double MinScale = 0.05;

    /// <summary>Largest factor searched: a temperature of 0.01, at which outputs 0.2 apart differ in probability by e^20.</summary>
    public const double MaxScale = 100;

    private const int SearchSteps = 60;

    /// <summary>
    /// Returns the factor in [<see cref="MinScale"/>, <see cref="MaxScale"/>] that minimizes the mean cross-entropy of
    /// softmax(factor x <paramref name="logits"/>) against <paramref name="labels"/> (N x C logits, N class indices).
    /// </summary>
    public static double FitScale(Tensor logits, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(labels);
        if (logits.dim() != 2 || labels.dim() != 1 || logits.shape[0] != labels.shape[0] || logits.shape[0] == 0)
        {
            throw new ArgumentException(
                $"Expected N x C logits and N labels with N above 0, but got logits of shape [{string.Join(", ", logits.shape)}] and labels of shape [{string.Join(", ", labels.shape)}].",
                nameof(logits));
        }

        using var noGrad = torch.no_grad();
        using Tensor values = logits.to(ScalarType.Float64);

        // The loss is convex in the factor, so it has one minimum along its logarithm too, and a golden-section search
        // over the logarithm finds it.
        double ratio = (Math.Sqrt(5) - 1) / 2;
        double low = Math.Log(MinScale);
        double high = Math.Log(MaxScale);
        double left = high - (ratio * (high - low));
        double right = low + (ratio * (high - low));
        double leftLoss = Loss(values, labels, Math.Exp(left));
        double rightLoss = Loss(values, labels, Math.Exp(right));
        for (int step = 0; step < SearchSteps; step++)
        {
            if (leftLoss <= rightLoss)
            {
                high = right;
                right = left;
                rightLoss = leftLoss;
                left = high - (ratio * (high - low));
                leftLoss = Loss(values, labels, Math.Exp(left));
            }
            else
            {
                low = left;
                left = right;
                leftLoss = rightLoss;
                right = low + (ratio * (high - low));
                rightLoss = Loss(values, labels, Math.Exp(right));
            }
        }

        return Math.Exp((low + high) / 2);
    }

    private static double Loss(Tensor logits, Tensor labels, double scale)
    {
        using var scope = torch.NewDisposeScope();
        using Scalar factor = scale.ToScalar();
        return nn.functional.cross_entropy(logits.mul(factor), labels).item<double>();
    }
}
