using static TorchSharp.torch;

namespace ContinualServe.Model;

/// <summary>Name, data type and shape of one tensor in a module's state dictionary (its parameters and buffers).</summary>
public sealed record TensorLayout(string Name, ScalarType DataType, IReadOnlyList<long> Shape)
{
    /// <summary>Returns the layout of every tensor in <paramref name="module"/>'s state dictionary, in its order.</summary>
    public static IReadOnlyList<TensorLayout> StateOf(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        return [.. module.state_dict().Select(pair => new TensorLayout(pair.Key, pair.Value.dtype, pair.Value.shape))];
    }

    /// <summary>Formats a shape as "[8, 16]".</summary>
    public static string FormatShape(IReadOnlyList<long> shape) => $"[{string.Join(", ", shape)}]";

    internal static TensorLayout Float32(string name, params long[] shape) => new(name, ScalarType.Float32, shape);
}
