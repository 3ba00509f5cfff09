using ContinualServe.Learner.Checkpoints;

namespace ContinualServe.Learner.Training;

/// <summary>
/// A learner checkpoint's optimizer file in memory, read off the learner thread by
/// <see cref="ContinualTrainer.ReadOptimizerState"/>: analytic sums, or the bytes of an Adam state.
/// </summary>
internal sealed record OptimizerStateFile(string Path, AnalyticSums? Sums, NativeBufferStream? AdamState) : IDisposable
{
    public void Dispose() => AdamState?.Dispose();
}
