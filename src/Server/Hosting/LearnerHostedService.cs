using System.Diagnostics;
using System.Runtime.InteropServices;
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
/// The service also watches the store's pinned-version file and announces each change, so that a promote,
/// rollback or unpin on a server sharing the learner's store reaches every replica and the all role's own server.
/// </summary>
public sealed partial class LearnerHostedService : IHostedLifecycleService, IDisposable
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan PublisherFlushTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan PinPollInterval = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan PinRetryInterval = TimeSpan.FromSeconds(30);

    // A pin check reads a small file, hashes the pinned version's weights and queues an announcement. 10 s for one to
    // finish is an estimate, not a measurement. A check blocked by the disk (a hung NFS read) is abandoned after it.
    private static readonly TimeSpan PinWatchStopTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Maximum time that <see cref="StopAsync"/> takes: the pin watch's wait, the learner's stop and the publisher's flush.
    /// The learn and all roles give the host at least this long to shut down, and the chart gives the learner's pod more.
    /// </summary>
    public static readonly TimeSpan LongestStop = PinWatchStopTimeout + StopTimeout + PublisherFlushTimeout;

    private readonly ContinualLearner learner;
    private readonly ModelVersionPublisher publisher;
    private readonly DistributionOptions distribution;
    private readonly ModelSwapper? swapper;
    private readonly IHostApplicationLifetime lifetime;
    private readonly ILogger<LearnerHostedService> logger;
    private readonly CancellationTokenSource stopping = new();
    private Task pinWatch = Task.CompletedTask;
    private long pinChecksStarted;
    private long pinChecksEnded;

    // The newest version the learner published or started from, which the all role's server serves when nothing is
    // pinned. The store's newest version can be newer: one saved just before a kill and before its checkpoint.
    private volatile ModelVersion? published;

    public LearnerHostedService(
        ContinualLearner learner,
        ModelVersionPublisher publisher,
        IOptions<DistributionOptions> distribution,
        IServiceProvider services,
        IHostApplicationLifetime lifetime,
        ILogger<LearnerHostedService> logger)
    {
        ArgumentNullException.ThrowIfNull(distribution);
        this.learner = learner;
        this.publisher = publisher;
        this.distribution = distribution.Value;
        swapper = services.GetService<ModelSwapper>();
        this.lifetime = lifetime;
        this.logger = logger;
    }

    /// <summary>The error that ended the learner and stopped the process, or null.</summary>
    public Exception? LearnerFailure => learner.Failure;

    /// <summary>Test seam that runs on the pin watch at the start of each serving step, in every role. Null outside tests.</summary>
    internal Action? BeforeServeStorePin { get; set; }

    /// <summary>Test seam that runs at the start of each pin check, before the pin file is read. Null outside tests.</summary>
    internal Action? BeforePinCheck { get; set; }

    /// <summary>Number of pin checks that the watch has started, counted just before each check reads the pin file.</summary>
    internal long PinChecksStarted => Interlocked.Read(ref pinChecksStarted);

    /// <summary>Number of pin checks that have ended, counted after a failed check's backoff.</summary>
    internal long PinChecksEnded => Interlocked.Read(ref pinChecksEnded);

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

        // A learner that stopped on an error is not restarted in place: the process stops, so that the orchestrator
        // restarts it from the newest checkpoint, and the server part of the all role drains its requests first.
        learner.Failed += _ => lifetime.StopApplication();
        ModelVersion first;
        try
        {
            first = learner.Start();
        }
        catch (Exception exception) when (exception is IncompatibleStateException or StoreInUseException)
        {
            throw new InvalidConfigurationException(exception.Message, exception);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            throw new InvalidConfigurationException(
                $"The learner could not write its model store '{learner.Store.RootDirectory}' or its checkpoint directory: {exception.Message} "
                + StoreWriteCheck.WhatToCheck(learner.Store.RootDirectory)
                + " Or set --store and --checkpoint-dir to directories this process can write.",
                exception);
        }

        long highest = AnnounceVersion(first);
        if (highest > first.Number)
        {
            LogNewerVersionsWithdrawn(logger, first.Number, highest, learner.Store.RootDirectory);
        }

        string modelName = first.Spec.Name;
        pinWatch = Task.Run(() => WatchPinAsync(modelName, stopping.Token), CancellationToken.None);
    }

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // learner.Stop and publisher.Flush do not watch the host's shutdown token, so a stop can take LongestStop (45 s).
    // AddLearnerRole raises the host's shutdown timeout to cover it, and the chart sets the learner pod's grace period.
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await stopping.CancelAsync().ConfigureAwait(false);
        await WaitForPinWatchAsync(cancellationToken).ConfigureAwait(false);
        // A round that finishes while the learner stops is still served here and announced to the replicas.
        learner.Stop(StopTimeout);
        learner.VersionPublished -= OnVersionPublished;
        publisher.Flush(PublisherFlushTimeout);
    }

    public void Dispose() => stopping.Dispose();

    /// <summary>
    /// Waits for the cancelled pin watch to end, for at most <see cref="PinWatchStopTimeout"/> or until the host's
    /// shutdown token fires. A watch still running then is left behind and logged, and the learner stops anyway.
    /// </summary>
    private async Task WaitForPinWatchAsync(CancellationToken shutdown)
    {
        long started = Stopwatch.GetTimestamp();
        try
        {
            await pinWatch.WaitAsync(PinWatchStopTimeout, shutdown).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is TimeoutException || (exception is OperationCanceledException && shutdown.IsCancellationRequested))
        {
            LogPinWatchAbandoned(logger, Stopwatch.GetElapsedTime(started).TotalSeconds, learner.Store.RootDirectory);
        }
    }

    private void OnVersionPublished(ModelVersion version) => AnnounceVersion(version);

    // Serves and announces the version. The announcement carries the store's highest version number, so that replicas
    // which read a higher announcement before (of a version that is now corrupt or deleted) follow this one. Returns
    // that number.
    private long AnnounceVersion(ModelVersion version)
    {
        published = version;
        swapper?.TrySwapToPublished(version);
        long highest = learner.Store.HighestVersionNumber();
        publisher.Publish(version, highest);
        return highest;
    }

    /// <summary>
    /// Announces the store's pin at start, whatever it is, so that a pin left on the topic by an earlier deployment is
    /// replaced, and then each change of it. A pin naming a version that is missing or corrupt is logged once and
    /// not announced, so replicas keep the previous pin.
    /// </summary>
    private async Task WatchPinAsync(string modelName, CancellationToken cancellation)
    {
        var state = new PinWatchState();
        int failuresInRow = 0;
        using var timer = new PeriodicTimer(PinPollInterval);
        try
        {
            do
            {
                try
                {
                    Interlocked.Increment(ref pinChecksStarted);
                    AnnounceChangedPin(modelName, state);
                    failuresInRow = 0;
                }
                catch (Exception exception) when (exception is not OperationCanceledException || !cancellation.IsCancellationRequested)
                {
                    // The watch lives as long as the process, so an error that nothing above expects ends one check, not
                    // the watch. The next check that succeeds serves the pin, and announces it unless the failed check already did.
                    failuresInRow++;
                    TimeSpan delay = FailureBackoff.After(failuresInRow);
                    if (state.Serving)
                    {
                        state.Serving = false;
                        LogPinServeFailed(logger, exception, learner.Store.RootDirectory, failuresInRow, delay);
                    }
                    else
                    {
                        LogPinWatchFailed(logger, exception, learner.Store.RootDirectory, failuresInRow, delay);
                    }

                    await Task.Delay(delay, cancellation).ConfigureAwait(false);
                }
                finally
                {
                    Interlocked.Increment(ref pinChecksEnded);
                }
            }
            while (await timer.WaitForNextTickAsync(cancellation).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    private void AnnounceChangedPin(string modelName, PinWatchState state)
    {
        BeforePinCheck?.Invoke();
        string store = learner.Store.RootDirectory;
        if (!StoreControlFiles.TryReadPinnedVersion(store, out long? pinned, out string? problem))
        {
            ReportPinProblem(ref state.LastProblem, problem);
            return;
        }

        if (state.AnnouncedOnce && pinned == state.Announced)
        {
            // The pin is on the topic already, so a failed serving step is retried without announcing it again.
            if (state.ServePending)
            {
                ServeAnnouncedPin(state);
            }

            return;
        }

        // Each load hashes the weights, so a pin that failed to load is tried again only every PinRetryInterval
        // until the pin changes.
        if (pinned is not null && pinned == state.FailedPin && Stopwatch.GetElapsedTime(state.FailedAt) < PinRetryInterval)
        {
            return;
        }

        ModelVersion? version = null;
        if (pinned is not null && !learner.Store.TryLoad(pinned.Value, out version))
        {
            state.FailedPin = pinned;
            state.FailedAt = Stopwatch.GetTimestamp();
            ReportPinProblem(ref state.LastProblem, $"pinned version {pinned} is missing or corrupt in {store}");
            return;
        }

        state.FailedPin = null;
        publisher.PublishPin(modelName, version);

        // Every replica logs each pin record, so the pin counts as announced once it is queued. An unexpected error while
        // serving it then retries only the serving step.
        state.Announced = pinned;
        state.AnnouncedOnce = true;
        state.LastProblem = null;
        ServeAnnouncedPin(state);
    }

    // The flags stay set when ServeStorePin throws, so the watch's catch logs a serving failure and the next check retries.
    private void ServeAnnouncedPin(PinWatchState state)
    {
        state.ServePending = true;
        state.Serving = true;
        ServeStorePin();
        state.Serving = false;
        state.ServePending = false;
    }

    // The all role runs no store poller, so this call makes its server follow a pin that another server on the store wrote.
    // Without a pin it moves to the learner's published version when that is newer than the live one, so it never moves
    // to a newer version that the learner does not announce.
    private void ServeStorePin()
    {
        BeforeServeStorePin?.Invoke();
        if (swapper is null || published is not { } version)
        {
            return;
        }

        try
        {
            swapper.TrySwapToPublished(version);
        }
        catch (Exception exception) when (exception is IOException or InvalidDataException or ExternalException)
        {
            LogPinNotServed(logger, exception, learner.Store.RootDirectory);
        }
    }

    private void ReportPinProblem(ref string? lastProblem, string problem)
    {
        if (problem != lastProblem)
        {
            LogPinNotAnnounced(logger, problem);
            lastProblem = problem;
        }
    }

    [LoggerMessage(EventId = 295, Level = LogLevel.Warning, Message = "Announced version {Version}, the newest intact version in {Directory}, although the store saved versions up to {Highest}: the versions above {Version} are corrupt (error 101) or were deleted. Replicas that served one of them go back to version {Version}, and all of them follow the next version this learner publishes")]
    private static partial void LogNewerVersionsWithdrawn(ILogger logger, long version, long highest, string directory);

    [LoggerMessage(EventId = 431, Level = LogLevel.Warning, Message = "The pin was not announced to replicas: {Problem}. Replicas keep the previous pin")]
    private static partial void LogPinNotAnnounced(ILogger logger, string problem);

    [LoggerMessage(EventId = 432, Level = LogLevel.Warning, Message = "Could not load the version that the pin in {Directory} selects, so the live version keeps serving until the pin changes or the learner publishes a version")]
    private static partial void LogPinNotServed(ILogger logger, Exception exception, string directory);

    [LoggerMessage(EventId = 433, Level = LogLevel.Error, Message = "Checking the pin in {Directory} failed with an unexpected error ({Failures} in a row); replicas and this server keep the previous pin, and the check is retried in {Delay}")]
    private static partial void LogPinWatchFailed(ILogger logger, Exception exception, string directory, int failures, TimeSpan delay);

    [LoggerMessage(EventId = 278, Level = LogLevel.Error, Message = "Serving the pin in {Directory} on this server failed with an unexpected error ({Failures} in a row). The pin is already announced to replicas, this server keeps its current version, and only the serving step is retried in {Delay}")]
    private static partial void LogPinServeFailed(ILogger logger, Exception exception, string directory, int failures, TimeSpan delay);

    [LoggerMessage(EventId = 266, Level = LogLevel.Warning, Message = "The pin watch on {Directory} did not end within {Seconds:F1} s of the stop, probably blocked reading the store, so the learner stops without waiting for it")]
    private static partial void LogPinWatchAbandoned(ILogger logger, double seconds, string directory);

    [LoggerMessage(EventId = 430, Level = LogLevel.Warning, Message = "Distribution:StoreUrl (--store-url) is not set, so announcements carry no store URL; replicas need their own --store-url to download versions. Set it to an address of this learner's --urls that the replicas reach")]
    private static partial void LogNoStoreUrl(ILogger logger);

    /// <summary>State that the pin watch carries from one check to the next.</summary>
    private sealed class PinWatchState
    {
        /// <summary>Pin last announced, valid once <see cref="AnnouncedOnce"/> is true (null: nothing pinned).</summary>
        public long? Announced;
        public bool AnnouncedOnce;

        /// <summary>True while the announced pin still has to be served here, after a serving step that threw.</summary>
        public bool ServePending;

        /// <summary>True from the start of a serving step until it returns, or until the watch logs its error.</summary>
        public bool Serving;
        public string? LastProblem;

        /// <summary>Pinned version that failed to load, and the <see cref="Stopwatch"/> timestamp of that failure.</summary>
        public long? FailedPin;
        public long FailedAt;
    }
}
