using System.Runtime.InteropServices;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Hosting;

/// <summary>Swaps in newer versions found in the model store (a shared volume or a learner in another process).</summary>
public sealed partial class StorePoller : BackgroundService
{
    private readonly ModelSwapper swapper;
    private readonly TimeSpan interval;
    private readonly ILogger<StorePoller> logger;
    private long completedPolls;

    // The store directory change last logged, so that each change is logged once.
    private readonly RepeatedFailureLog reportedDirectoryChange = new();

    // The same poll error repeats on every poll while its cause lasts (a volume that is gone), so it is logged when it
    // appears, and again only after it changes or a poll succeeds.
    private readonly RepeatedFailureLog reportedPollFailure = new();

    public StorePoller(ModelSwapper swapper, IOptions<ServerOptions> options, ILogger<StorePoller> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.swapper = swapper;
        this.logger = logger;
        interval = options.Value.StorePollInterval;
    }

    /// <summary>Number of polls finished since the start, failed ones included. Tests wait on it in place of sleeping.</summary>
    internal long CompletedPolls => Interlocked.Read(ref completedPolls);

    /// <summary>Test seam that runs at the start of each poll, before the store is read. Null outside tests.</summary>
    internal Action? BeforePoll { get; set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (interval <= TimeSpan.Zero)
        {
            return;
        }

        using var timer = new PeriodicTimer(interval);
        int failuresInRow = 0;
        try
        {
            do
            {
                try
                {
                    BeforePoll?.Invoke();
                    ReportDirectoryChange();
                    swapper.TrySwapToLatest();
                    failuresInRow = 0;
                    reportedPollFailure.Clear();
                }
                catch (Exception exception) when (exception is IOException or InvalidDataException or ExternalException)
                {
                    if (reportedPollFailure.IsNew(exception.Message))
                    {
                        LogPollFailed(logger, exception, swapper.Store.RootDirectory);
                    }
                }
                catch (Exception exception) when (exception is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    // Any other error is retried after a backoff, so the server follows the store again once the cause is gone.
                    failuresInRow++;
                    TimeSpan delay = FailureBackoff.After(failuresInRow);
                    LogPollFailedUnexpectedly(logger, exception, swapper.Store.RootDirectory, failuresInRow, delay);
                    await Task.Delay(delay, stoppingToken).ConfigureAwait(false);
                }

                Interlocked.Increment(ref completedPolls);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // A stop, also one that ends a failed start, is not a failure of the poller.
        }
    }

    // Logs an error when the store directory's path no longer leads to the directory opened at start. The poll goes on
    // as before, because the live version keeps serving either way, but the learner rejects such a directory.
    private void ReportDirectoryChange()
    {
        try
        {
            swapper.Store.EnsureRootDirectoryUnchanged();
            reportedDirectoryChange.Clear();
        }
        catch (StoreDirectoryChangedException exception)
        {
            if (reportedDirectoryChange.IsNew(exception.Message))
            {
                LogStoreDirectoryChanged(logger, exception, swapper.Store.RootDirectory);
            }
        }
    }

    [LoggerMessage(EventId = 107, Level = LogLevel.Error, Message = "The model store directory {Directory} is no longer the directory this server opened at start. Versions found there may not continue the version numbers served so far, and a version numbered at or below the live one is never loaded. Move the original directory back, or restart the server")]
    private static partial void LogStoreDirectoryChanged(ILogger logger, Exception exception, string directory);

    [LoggerMessage(EventId = 410, Level = LogLevel.Warning, Message = "Could not load a new version from {Directory}; the live version keeps serving")]
    private static partial void LogPollFailed(ILogger logger, Exception exception, string directory);

    [LoggerMessage(EventId = 411, Level = LogLevel.Error, Message = "Polling {Directory} for a new version or pin failed with an unexpected error ({Failures} in a row); the live version keeps serving, and the poll is retried in {Delay}")]
    private static partial void LogPollFailedUnexpectedly(ILogger logger, Exception exception, string directory, int failures, TimeSpan delay);
}
