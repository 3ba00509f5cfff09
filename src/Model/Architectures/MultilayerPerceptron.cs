using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualServe.Model.Architectures;

/// <summary>Fully connected ReLU network over the flattened, scaled input; one 10-way (or N-way) head.</summary>
public sealed class MultilayerPerceptron : nn.Module<Tensor, Tensor>
{
    private readonly Sequential layers;
    // A field keeps the Scalar alive during each native call: TorchSharp 0.107 passes an implicitly converted
    // Scalar by raw handle, and its finalizer can free it while the call still reads it.
    private readonly Scalar inputScale;

    public MultilayerPerceptron(ModelSpec spec)
        : base(nameof(MultilayerPerceptron))
    {
        inputScale = ((double)spec.InputScale).ToScalar();
        var modules = new List<(string, nn.Module<Tensor, Tensor>)>();
        long width = spec.FeatureCount;
        for (int index = 0; index < spec.HiddenSizes.Count; index++)
        {
            modules.Add((HiddenLayerName(index), nn.Linear(width, spec.HiddenSizes[index])));
            modules.Add(($"relu{index}", nn.ReLU()));
            width = spec.HiddenSizes[index];
        }

        modules.Add((ModelFactory.HeadModuleName, nn.Linear(width, spec.ClassCount)));
        layers = nn.Sequential(modules);
        RegisterComponents();
    }

    /// <summary>
    /// Returns the layout of each tensor in the state dictionary of a module built from <paramref name="spec"/>, without
    /// building one, which would draw initial weights from the global random generator.
    /// </summary>
    internal static IReadOnlyList<TensorLayout> DescribeState(ModelSpec spec)
    {
        var layout = new List<TensorLayout>();
        long width = spec.FeatureCount;
        for (int index = 0; index < spec.HiddenSizes.Count; index++)
        {
            layout.Add(TensorLayout.Float32(HiddenParameterName(index, "weight"), spec.HiddenSizes[index], width));
            layout.Add(TensorLayout.Float32(HiddenParameterName(index, "bias"), spec.HiddenSizes[index]));
            width = spec.HiddenSizes[index];
        }

        layout.Add(TensorLayout.Float32(HeadParameterName("weight"), spec.ClassCount, width));
        layout.Add(TensorLayout.Float32(HeadParameterName("bias"), spec.ClassCount));
        return layout;
    }

    /// <summary>Returns the name of a hidden layer's parameter in <c>named_parameters()</c>, where <paramref name="kind"/> is "weight" or "bias".</summary>
    public static string HiddenParameterName(int index, string kind) => $"layers.{HiddenLayerName(index)}.{kind}";

    /// <summary>Returns the name of a head parameter in <c>named_parameters()</c>, where <paramref name="kind"/> is "weight" or "bias".</summary>
    public static string HeadParameterName(string kind) => $"layers.{ModelFactory.HeadModuleName}.{kind}";

    private static string HiddenLayerName(int index) => $"hidden{index}";

    public override Tensor forward(Tensor input)
    {
        using Tensor flat = input.flatten(1);
        using Tensor scaled = flat.mul(inputScale);
        return layers.forward(scaled);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            layers.Dispose();
            inputScale.Dispose();
        }

        base.Dispose(disposing);
    }
}
