namespace ContinualServe.Learner.Data;

/// <summary>
/// How a forward pass over many examples is split: <paramref name="BatchSize"/> examples per forward call, and
/// <paramref name="BeforeBatch"/>, which runs on the calling thread before each batch. The learner polls its Kafka
/// consumer there, so that a long evaluation does not drop it from its consumer group.
/// </summary>
public sealed record ForwardBatching(int BatchSize, Action? BeforeBatch = null)
{
    /// <summary>Batches of <see cref="TensorBatches.ForwardBatchSize"/> with nothing run between them.</summary>
    public static ForwardBatching Default { get; } = new(TensorBatches.ForwardBatchSize);
}
