namespace ContinualServe.Server.Inference;

/// <summary>
/// Tensor names of the served model in the protocol: one FP32 input and two outputs. The model metadata
/// route reports them, and the request reader rejects any other name.
/// </summary>
public static class ModelTensors
{
    public const string Input = "input";

    /// <summary>Softmax output, FP32 of shape [N, classes].</summary>
    public const string Probabilities = "probabilities";

    /// <summary>Index of the most probable class, INT64 of shape [N].</summary>
    public const string Label = "label";

    /// <summary>Output names in the order of a response whose request names no outputs.</summary>
    public static readonly IReadOnlyList<string> Outputs = [Probabilities, Label];
}
