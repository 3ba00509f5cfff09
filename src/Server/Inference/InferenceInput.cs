namespace ContinualServe.Server.Inference;

/// <summary>
/// A validated input tensor: <see cref="BatchSize"/> rows of features, row by row, in a pooled array that
/// may be longer than the data. <see cref="Outputs"/> lists the outputs the response carries, in order.
/// </summary>
public readonly record struct InferenceInput(string Name, int BatchSize, float[] Data, string? RequestId)
{
    public IReadOnlyList<RequestedOutput> Outputs { get; init; } = RequestedOutputReader.AllJson;

    public bool FromBinary { get; init; }
}
