namespace ContinualServe.Server.Inference;

/// <summary>
/// A validated input tensor: <see cref="BatchSize"/> rows of features, row by row, in a pooled array that
/// may be longer than the data. <see cref="BinaryOutput"/> is set when the client asked for binary outputs.
/// </summary>
public readonly record struct InferenceInput(string Name, int BatchSize, float[] Data, string? RequestId)
{
    public bool BinaryOutput { get; init; }

    public bool FromBinary { get; init; }
}
