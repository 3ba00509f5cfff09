using ContinualServe.Server.Inference;
using ContinualServe.Learner.Publishing;

namespace ContinualServe.Server.Management;

/// <summary>
/// Returns 409 for promote, rollback, unpin, learning and golden-set requests on a replica that follows the version
/// topic. Its model store is its own copy, so a pause marker or golden set written there would never reach the
/// learner, and a pin written there would last only until the learner's next pin announcement.
/// </summary>
internal sealed class LearnerControlFilter(IConfiguration configuration) : IEndpointFilter
{
    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (string.IsNullOrWhiteSpace(configuration[DistributionOptions.SectionName + ":" + nameof(DistributionOptions.BootstrapServers)]))
        {
            return next(context);
        }

        var error = new InferenceError(
            "This server is a replica that follows the version topic. Its model store is a copy that the learner never reads, "
            + "and it serves the version the learner announces as pinned.",
            null,
            "send promote, rollback, unpin, learning and golden-set requests to a server that shares the learner's model store "
            + "(continualserve all, or serve on the learner's volume), which announces pins to every replica");
        return ValueTask.FromResult<object?>(error.ToResult(StatusCodes.Status409Conflict));
    }
}
