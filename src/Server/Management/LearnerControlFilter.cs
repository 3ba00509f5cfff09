using ContinualServe.Server.Inference;
using ContinualServe.Learner;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Telemetry;

namespace ContinualServe.Server.Management;

/// <summary>
/// Returns 409 for promote, rollback, unpin, learning and golden-set requests on a replica that follows the version
/// topic. Its model store is its own copy, so a pause marker or golden set written there would never reach the
/// learner, and a pin written there would last only until the learner's next pin announcement.
/// </summary>
internal sealed class LearnerControlFilter(IServiceProvider services) : IEndpointFilter
{
    // A process that runs the learner (the all role) announces versions and pins even when Distribution:BootstrapServers
    // is set, as the chart's shared configuration does, so only a server without a learner is a replica.
    private readonly bool isReplica = services.GetService<ContinualLearner>() is null
        && !string.IsNullOrWhiteSpace(services.GetRequiredService<IConfiguration>()[DistributionOptions.SectionName + ":" + nameof(DistributionOptions.BootstrapServers)]);

    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (!isReplica)
        {
            return next(context);
        }

        var error = new InferenceError(
            "This server is a replica that follows the version topic. Its model store is a copy that the learner never reads, "
            + "and it serves the version the learner announces as pinned.",
            null,
            "send promote, rollback, unpin, learning and golden-set requests to a server that shares the learner's model store "
            + "(continualserve all, or serve on the learner's volume), which announces pins to every replica");
        ReliabilityMetrics.ManagementRequests.WithLabels("conflict").Inc();
        return ValueTask.FromResult<object?>(error.ToResult(StatusCodes.Status409Conflict));
    }
}
