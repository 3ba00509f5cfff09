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
    private readonly Sequential features;
    private readonly Linear head;
    // A field keeps the Scalar alive during each native call: TorchSharp 0.107 passes an implicitly converted
    // Scalar by raw handle, and its finalizer can free it while the call still reads it.
    private readonly Scalar inputScale;
    private readonly long side;

    public SmallConvolutionalNetwork(ModelSpec spec)
        : base(nameof(SmallConvolutionalNetwork))
    {
        side = (long)Math.Round(Math.Sqrt(spec.FeatureCount));
        if (side * side != spec.FeatureCount || side % 4 != 0)
        {
            throw new InvalidDataException(
                $"The cnn architecture needs a square image whose side is a multiple of 4; got {spec.FeatureCount} features.");
        }

        inputScale = ((double)spec.InputScale).ToScalar();
        long first = spec.HiddenSizes.Count > 0 ? spec.HiddenSizes[0] : 16;
        long second = spec.HiddenSizes.Count > 1 ? spec.HiddenSizes[1] : 32;
        features = nn.Sequential(
            ("conv0", nn.Conv2d(1, first, 3, padding: 1)),
            ("relu0", nn.ReLU()),
            ("pool0", nn.MaxPool2d(2)),
            ("conv1", nn.Conv2d(first, second, 3, padding: 1)),
            ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)));
        head = nn.Linear(second * (side / 4) * (side / 4), spec.ClassCount);
        RegisterComponents();
    }

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
