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

    // Records compare lists by reference, so equality is written out to compare the shapes' sizes.
    public bool Equals(TensorLayout? other) =>
        other is not null && Name == other.Name && DataType == other.DataType && Shape.SequenceEqual(other.Shape);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Name);
        hash.Add(DataType);
        foreach (long size in Shape)
        {
            hash.Add(size);
        }

        return hash.ToHashCode();
    }

    public override string ToString() => $"{Name} {DataType} {FormatShape(Shape)}";

    /// <summary>Formats a shape as "[8, 16]".</summary>
    public static string FormatShape(IReadOnlyList<long> shape) => $"[{string.Join(", ", shape)}]";

    internal static TensorLayout Float32(string name, params long[] shape) => new(name, ScalarType.Float32, shape);
}
