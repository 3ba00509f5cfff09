using System.Runtime.InteropServices;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Hosting;

/// <summary>Swaps in newer versions found in the model store (a shared volume or a learner in another process).</summary>
public sealed partial class StorePoller : BackgroundService
{
    private readonly ModelSwapper swapper;
    private readonly TimeSpan interval;
    private readonly ILogger<StorePoller> logger;

    public StorePoller(ModelSwapper swapper, IOptions<ServerOptions> options, ILogger<StorePoller> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.swapper = swapper;
        this.logger = logger;
        interval = options.Value.StorePollInterval;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (interval <= TimeSpan.Zero)
        {
            return;
        }

        using var timer = new PeriodicTimer(interval);
        try
        {
            do
            {
                try
                {
                    swapper.TrySwapToLatest();
                }
                catch (Exception exception) when (exception is IOException or InvalidDataException or ExternalException)
                {
                    LogPollFailed(logger, exception, swapper.Store.RootDirectory);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // A stop, also one that ends a failed start, is not a failure of the poller.
        }
    }

    [LoggerMessage(EventId = 410, Level = LogLevel.Warning, Message = "Could not load a new version from {Directory}; the live version keeps serving")]
    private static partial void LogPollFailed(ILogger logger, Exception exception, string directory);
}
