using ContinualServe.Model.Architectures;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Model;

/// <summary>Builds modules from a <see cref="ModelSpec"/>, so that server and learner build the same network.</summary>
public static class ModelFactory
{
    public const string MlpArchitecture = "mlp";
    public const string CnnArchitecture = "cnn";

    public static nn.Module<Tensor, Tensor> Create(ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        return EnsureKnownArchitecture(spec.Architecture) switch
        {
            MlpArchitecture => new MultilayerPerceptron(spec),
            _ => new SmallConvolutionalNetwork(spec),
        };
    }

    /// <summary>
    /// Returns the layout of each tensor in the state dictionary of the module that <see cref="Create"/> builds from
    /// <paramref name="spec"/>. Nothing is built, so no initial weights are drawn from the global random generator.
    /// </summary>
    /// <exception cref="InvalidDataException">The spec cannot build a model, such as one naming an unknown architecture.</exception>
    public static IReadOnlyList<TensorLayout> DescribeState(ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        return EnsureKnownArchitecture(spec.Architecture) switch
        {
            MlpArchitecture => MultilayerPerceptron.DescribeState(spec),
            _ => SmallConvolutionalNetwork.DescribeState(spec),
        };
    }

    /// <summary>Builds a module like <paramref name="source"/>'s on <paramref name="device"/> and copies its weights.</summary>
    public static nn.Module<Tensor, Tensor> Clone(ModelSpec spec, nn.Module<Tensor, Tensor> source, Device device)
    {
        nn.Module<Tensor, Tensor> copy = Create(spec);
        copy.to(device);
        CopyWeights(source, copy);
        return copy;
    }

    /// <summary>Copies every parameter and buffer of <paramref name="source"/> into <paramref name="target"/>.</summary>
    public static void CopyWeights(nn.Module<Tensor, Tensor> source, nn.Module<Tensor, Tensor> target)
    {
        using var noGrad = torch.no_grad();
        Dictionary<string, Tensor> sourceState = source.state_dict();
        foreach ((string name, Tensor destination) in target.state_dict())
        {
            if (!sourceState.TryGetValue(name, out Tensor? value))
            {
                throw new InvalidOperationException($"Source module has no tensor named '{name}'.");
            }

            destination.copy_(value);
        }
    }

    /// <summary>
    /// Returns whether <paramref name="parameterName"/>, a name from <c>named_parameters()</c>, belongs to the classifier
    /// head. Every architecture here names its last linear layer <c>head</c>.
    /// </summary>
    public static bool IsHeadParameter(string parameterName)
    {
        ArgumentNullException.ThrowIfNull(parameterName);
        return parameterName.Split('.').Contains(HeadModuleName);
    }

    internal const string HeadModuleName = "head";

    internal static string EnsureKnownArchitecture(string architecture) => architecture switch
    {
        MlpArchitecture or CnnArchitecture => architecture,
        _ => throw new InvalidDataException(
            $"Model architecture '{architecture}' is unknown; expected '{MlpArchitecture}' or '{CnnArchitecture}'."),
    };
}
