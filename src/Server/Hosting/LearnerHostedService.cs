using ContinualServe.Learner;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Runs the <see cref="ContinualLearner"/> inside a host and announces every version it publishes on the
/// version topic, starting with the version it starts from. When the same process also serves inference
/// (the <c>all</c> role), each version is swapped in directly as well. The learner starts only once every hosted
/// service has started, Kestrel included. A process that cannot listen must not announce a version that no store
/// URL serves: on a compacted topic, that record would replace the live learner's newest one.
/// </summary>
public sealed partial class LearnerHostedService : IHostedLifecycleService
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(30);

    private readonly ContinualLearner learner;
    private readonly ModelVersionPublisher publisher;
    private readonly DistributionOptions distribution;
    private readonly ModelSwapper? swapper;
    private readonly ILogger<LearnerHostedService> logger;

    public LearnerHostedService(
        ContinualLearner learner,
        ModelVersionPublisher publisher,
        IOptions<DistributionOptions> distribution,
        IServiceProvider services,
        ILogger<LearnerHostedService> logger)
    {
        ArgumentNullException.ThrowIfNull(distribution);
        this.learner = learner;
        this.publisher = publisher;
        this.distribution = distribution.Value;
        swapper = services.GetService<ModelSwapper>();
        this.logger = logger;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StartedAsync(CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(distribution.StoreUrl))
        {
            LogNoStoreUrl(logger);
        }

        try
        {
            await publisher.EnsureTopicAsync(distribution, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // A stop while the broker is slow to respond (Ctrl-C during start) is a normal stop, so the learner never starts.
            return;
        }

        learner.VersionPublished += OnVersionPublished;
        ModelVersion first;
        try
        {
            first = learner.Start();
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            throw new InvalidConfigurationException(
                $"The learner could not write its model store '{learner.Store.RootDirectory}' or its checkpoint directory: {exception.Message} "
                + "Set --store and --checkpoint-dir to directories this process can write.",
                exception);
        }

        OnVersionPublished(first);
    }

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken)
    {
        learner.VersionPublished -= OnVersionPublished;
        learner.Stop(StopTimeout);
        publisher.Flush(TimeSpan.FromSeconds(5));
        return Task.CompletedTask;
    }

    private void OnVersionPublished(ModelVersion version)
    {
        swapper?.TrySwapToPublished(version);
        publisher.Publish(version);
    }

    [LoggerMessage(EventId = 430, Level = LogLevel.Warning, Message = "Distribution:StoreUrl is not set, so announcements carry no store URL; replicas need their own Distribution:StoreUrl to download versions")]
    private static partial void LogNoStoreUrl(ILogger logger);
}
