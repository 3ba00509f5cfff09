using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualServe.Model.Architectures;

/// <summary>
/// Two 3x3 convolution blocks (ReLU, 2x2 max pooling) and a linear head, for square single-channel
/// images such as Fashion-MNIST's 28x28. Channel counts come from the spec's first two hidden sizes.
/// </summary>
public sealed class SmallConvolutionalNetwork : nn.Module<Tensor, Tensor>
{
    private const int KernelSize = 3;

    private readonly Sequential features;
    private readonly Linear head;
    // A field keeps the Scalar alive during each native call: TorchSharp 0.107 passes an implicitly converted
    // Scalar by raw handle, and its finalizer can free it while the call still reads it.
    private readonly Scalar inputScale;
    private readonly long side;

    public SmallConvolutionalNetwork(ModelSpec spec)
        : base(nameof(SmallConvolutionalNetwork))
    {
        side = ImageSide(spec);
        inputScale = ((double)spec.InputScale).ToScalar();
        (long first, long second) = ChannelCounts(spec);
        features = nn.Sequential(
            ("conv0", nn.Conv2d(1, first, KernelSize, padding: 1)),
            ("relu0", nn.ReLU()),
            ("pool0", nn.MaxPool2d(2)),
            ("conv1", nn.Conv2d(first, second, KernelSize, padding: 1)),
            ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)));
        head = nn.Linear(HeadInputWidth(second, side), spec.ClassCount);
        RegisterComponents();
    }

    /// <summary>
    /// Returns the layout of each tensor in the state dictionary of a module built from <paramref name="spec"/>, without
    /// building one, which would draw initial weights from the global random generator.
    /// </summary>
    internal static IReadOnlyList<TensorLayout> DescribeState(ModelSpec spec)
    {
        long imageSide = ImageSide(spec);
        (long first, long second) = ChannelCounts(spec);
        return
        [
            TensorLayout.Float32("features.conv0.weight", first, 1, KernelSize, KernelSize),
            TensorLayout.Float32("features.conv0.bias", first),
            TensorLayout.Float32("features.conv1.weight", second, first, KernelSize, KernelSize),
            TensorLayout.Float32("features.conv1.bias", second),
            TensorLayout.Float32($"{ModelFactory.HeadModuleName}.weight", spec.ClassCount, HeadInputWidth(second, imageSide)),
            TensorLayout.Float32($"{ModelFactory.HeadModuleName}.bias", spec.ClassCount),
        ];
    }

    private static long ImageSide(ModelSpec spec)
    {
        long imageSide = (long)Math.Round(Math.Sqrt(spec.FeatureCount));
        if (imageSide * imageSide != spec.FeatureCount || imageSide % 4 != 0)
        {
            throw new InvalidDataException(
                $"The cnn architecture needs a square image whose side is a multiple of 4; got {spec.FeatureCount} features.");
        }

        return imageSide;
    }

    private static (long First, long Second) ChannelCounts(ModelSpec spec) =>
        (spec.HiddenSizes.Count > 0 ? spec.HiddenSizes[0] : 16, spec.HiddenSizes.Count > 1 ? spec.HiddenSizes[1] : 32);

    // Two 2x2 poolings quarter the side.
    private static long HeadInputWidth(long channels, long imageSide) => channels * (imageSide / 4) * (imageSide / 4);

    public override Tensor forward(Tensor input)
    {
        using Tensor image = input.reshape(-1, 1, side, side);
        using Tensor scaled = image.mul(inputScale);
        using Tensor mapped = features.forward(scaled);
        using Tensor flat = mapped.flatten(1);
        return head.forward(flat);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            features.Dispose();
            head.Dispose();
            inputScale.Dispose();
        }

        base.Dispose(disposing);
    }
}
