namespace ContinualServe.Learner.Training;

/// <summary>
/// The running sums of an analytic head file in managed memory, read off the learner thread by
/// <see cref="AnalyticHead.Read"/>: the Gram matrix and the cross term in row-major order.
/// </summary>
internal sealed record AnalyticSums(int FeatureCount, int ClassCount, double[] Gram, double[] Cross);
