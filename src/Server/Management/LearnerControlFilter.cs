using ContinualServe.Server.Inference;
using ContinualServe.Learner.Publishing;

namespace ContinualServe.Server.Management;

/// <summary>
/// Returns 409 for learning and golden-set requests on a replica that follows the version topic: its model store
/// is its own copy, so a pause marker or golden set written there would never reach the learner.
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
            "This server is a replica that follows the version topic; its model store is a copy the learner never reads.",
            null,
            "send learning and golden-set requests to a server that shares the learner's model store (continualserve all, or serve on the learner's volume)");
        return ValueTask.FromResult<object?>(error.ToResult(StatusCodes.Status409Conflict));
    }
}
