using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Hosting;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Distribution;

/// <summary>
/// Keeps a server replica on the newest announced version of its model (Server:ModelName), or on the version the
/// learner announces as pinned. A dedicated thread reads the whole version topic from the beginning, so a replica
/// that starts late catches up, and then follows it. This service downloads the target version, verifies it and
/// swaps it in through <see cref="ModelSwapper"/>, writing or clearing the pin in its own store to match the
/// learner's. It acts only after it has read the topic up to its end, so a restart never applies a pin record that a
/// later record replaces. A pin in its own store stays until a pin record of the learner replaces it. A failed or
/// corrupt download is retried with exponential backoff until it succeeds or a newer announcement replaces it, and
/// the live version keeps serving meanwhile. A record that makes another version the target cancels the download in
/// progress: a newer version while none is pinned, a pin of another version, or an unpin during the download of a
/// pinned version other than the newest. A slow download of a version that is no longer the target thus does not
/// delay the one that is. A newer version does not cancel the download that follows one it cancelled, so at least
/// every other download completes while versions are announced faster than a download takes. A pin or an unpin
/// that makes another version the target still cancels any download at once.
/// </summary>
public sealed partial class ModelVersionSubscriber : BackgroundService
{
    private readonly DistributionOptions options;
    private readonly KafkaClientProperties kafkaProperties;
    private readonly ModelSwapper swapper;
    private readonly LiveModel live;
    private readonly ILogger<ModelVersionSubscriber> logger;
    private readonly Channel<bool> announced = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Lock newestLock = new();
    private readonly HashSet<string> ignoredModels = new(StringComparer.Ordinal);

    // Pairs of newest version and store URL for which warning 489 was logged. Only the consumer thread uses it.
    private readonly HashSet<(long NewestVersion, string StoreUrl)> reportedOlderAnnouncements = [];
    private readonly string modelName;
    private const long UnreadableLocalPin = -1;

    // The reader checks for a stop at least every 5 s (the metadata request while it waits for the topic to exist) and
    // then closes its consumer, so a healthy stop ends well within this bound.
    private static readonly TimeSpan ConsumerJoinTimeout = TimeSpan.FromSeconds(10);

    private readonly HashSet<int> partitionsToCatchUp = [];
    private ModelVersionAnnouncement? newest;
    private ModelPinAnnouncement? pin;
    private volatile bool caughtUp;

    // The download in progress, or null while none runs. Guarded by newestLock, like the records it is checked against.
    private RunningDownload? download;

    // True when the last download was cancelled because a newer version was announced while none is pinned. Only the
    // follow loop reads and writes it.
    private bool lastDownloadOvertaken;

    // Kafka errors reported on the version topic since the start, for the rate limit of their log.
    private readonly RepeatedLogSampler kafkaErrorSampler = new();

    // Backoff before the next download of the target version after a failed one, and the attempts at it so far.
    private TimeSpan delay;
    private int attempts;

    // Version whose download last failed on a full volume, so that the failure is logged once per version.
    private long? volumeFullVersion;

    // Message of the store directory change last logged, so that each change is logged once until a download succeeds.
    private string? reportedDirectoryChange;

    public ModelVersionSubscriber(
        IOptions<DistributionOptions> options,
        IOptions<ServerOptions> serverOptions,
        ModelSwapper swapper,
        LiveModel live,
        KafkaClientProperties kafkaProperties,
        ILogger<ModelVersionSubscriber> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(serverOptions);
        ArgumentNullException.ThrowIfNull(kafkaProperties);
        this.options = options.Value;
        this.kafkaProperties = kafkaProperties;
        modelName = serverOptions.Value.ModelName;
        this.swapper = swapper;
        this.live = live;
        this.logger = logger;
    }

    /// <summary>Thread that reads the version topic, or null before the service starts. Tests check that a stop ends it.</summary>
    internal Thread? ConsumerThread { get; private set; }

    /// <summary>Newest version announced so far, or null before the first announcement.</summary>
    public ModelVersionAnnouncement? NewestAnnouncement
    {
        get
        {
            lock (newestLock)
            {
                return newest;
            }
        }
    }

    /// <summary>Checks that the store directory is writable, then starts following the version topic.</summary>
    /// <exception cref="InvalidConfigurationException">The store directory is not writable.</exception>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // Without this check every download fails on its first write, and the replica retries for good.
        StoreWriteCheck.ThrowIfNotWritable(swapper.Store.RootDirectory, "replica");
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using HttpClient http = StoreHttpClient.Create(options);
        string? storeToken = BearerToken.Read(options.StoreTokenFile, options.StoreTokenEnvironmentVariable, "model store");
        if (storeToken is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", storeToken);
        }

        var downloader = new VersionDownloader(http, swapper.Store, options.StoreUrl, options.MinDownloadBytesPerSecond);
        RemoveAbandonedDownloads(downloader);
        var consumerThread = new Thread(() => ConsumeAnnouncements(stoppingToken))
        {
            IsBackground = true,
            Name = "continualserve-version-subscriber",
        };
        ConsumerThread = consumerThread;
        consumerThread.Start();
        LogStarted(logger, options.Topic, options.BootstrapServers);
        try
        {
            await FollowUntilStoppedAsync(downloader, stoppingToken).ConfigureAwait(false);
        }
        finally
        {
            // A stop during a download ends the loop with OperationCanceledException, which must not skip the join, so
            // the consumer is closed before the host disposes what it uses.
            if (!consumerThread.Join(ConsumerJoinTimeout))
            {
                LogConsumerStillRunning(logger, options.Topic, ConsumerJoinTimeout);
            }
        }
    }

    private async Task FollowUntilStoppedAsync(VersionDownloader downloader, CancellationToken stoppingToken)
    {
        delay = options.RetryDelay;
        int failuresInRow = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await FollowAnnouncementsAsync(downloader, stoppingToken).ConfigureAwait(false);
                failuresInRow = 0;
            }
            catch (Exception exception) when (exception is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                // The replica must follow the learner as long as it runs, so an error that no step expects ends this
                // pass only. The live version keeps serving meanwhile.
                failuresInRow++;
                TimeSpan backoff = FailureBackoff.After(failuresInRow);
                LogFollowFailed(logger, exception, failuresInRow, backoff);
                await WaitAsync(backoff, stoppingToken).ConfigureAwait(false);
            }
        }
    }

    private void RemoveAbandonedDownloads(VersionDownloader downloader)
    {
        try
        {
            IReadOnlyList<string> removed = downloader.RemoveAbandonedDownloads(out IReadOnlyList<DownloadCleanupFailure> failures);
            foreach (string path in removed)
            {
                LogAbandonedDownloadRemoved(logger, path);
            }

            foreach (DownloadCleanupFailure failure in failures)
            {
                LogAbandonedDownloadNotDeleted(logger, failure.Path, failure.Error.Message);
            }
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            // What is left only takes space, so the replica starts anyway and tries again at its next start.
            LogAbandonedDownloadsKept(logger, exception, swapper.Store.RootDirectory);
        }
    }

    /// <summary>
    /// Makes one step towards the target version: waits for an announcement while the replica is on target, else
    /// removes the local pin or downloads and swaps in the target, waiting out the backoff after a failed download.
    /// </summary>
    private async Task FollowAnnouncementsAsync(VersionDownloader downloader, CancellationToken stoppingToken)
    {
        (ModelVersionAnnouncement? target, bool pinned, bool keepLocalPin) = Target();
        if (!caughtUp || keepLocalPin || IsOnTarget(target, pinned))
        {
            await WaitForAnnouncementAsync(Timeout.InfiniteTimeSpan, stoppingToken).ConfigureAwait(false);
            delay = options.RetryDelay;
            attempts = 0;
            return;
        }

        if (!pinned && LocalPin() is not null)
        {
            UnpinLocally(target);
            return;
        }

        attempts++;
        InstallOutcome outcome = await TryInstallAsync(downloader, target!, pinned, attempts, stoppingToken).ConfigureAwait(false);
        if (outcome != InstallOutcome.Failed)
        {
            // After a cancelled download the next step downloads the new target at once.
            delay = options.RetryDelay;
            attempts = 0;
            return;
        }

        // A newer announcement or another pin ends the wait early, and the failed version is then skipped. The same
        // version announced from another store URL (a learner that moved) is tried at once, from the start of the
        // backoff. A record that changes none of these (the signal of an earlier record, a record of another model)
        // keeps the backoff and the count.
        if (await WaitForAnnouncementAsync(delay, stoppingToken).ConfigureAwait(false) && Target() is var next
            && (next.Target?.Version != target!.Version || next.Pinned != pinned
                || !string.Equals(next.Target?.StoreUrl, target.StoreUrl, StringComparison.Ordinal)))
        {
            delay = options.RetryDelay;
            attempts = 0;
        }
        else
        {
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.MaxRetryDelay.Ticks));
        }
    }

    /// <summary>
    /// The version to serve: the pinned one while the learner announces a pin, else the newest announced. Until a pin
    /// record for this model is read, a pin in this replica's store counts as the learner's. KeepLocalPin is then true,
    /// and the store poller serves that pin.
    /// </summary>
    private (ModelVersionAnnouncement? Target, bool Pinned, bool KeepLocalPin) Target()
    {
        lock (newestLock)
        {
            if (pin is null && LocalPin() is not null)
            {
                return (null, true, true);
            }

            return pin?.Pinned is { } pinnedVersion ? (pinnedVersion, true, false) : (newest, false, false);
        }
    }

    // Pinned: the pinned version is live and pinned in this replica's store. Not pinned: nothing is pinned here, and the
    // live version is the newest announced one, or newer than any version the announcing store saved. A live version
    // newer than the announced one but within the store's saved numbers is one the learner withdrew as corrupt or deleted.
    private bool IsOnTarget(ModelVersionAnnouncement? target, bool pinned)
    {
        long? pinnedHere = LocalPin();
        if (pinned)
        {
            return live.CurrentVersion == target!.Version && pinnedHere == target.Version;
        }

        if (pinnedHere is not null)
        {
            return false;
        }

        long current = live.CurrentVersion ?? 0;
        return target is null || target.Version == current || (target.Version < current && !IsWithdrawn(target, current));
    }

    // Returns whether target's store saved version number, above target, and now announces target in its place.
    private static bool IsWithdrawn(ModelVersionAnnouncement target, long number) =>
        number > target.Version && number <= target.HighestSavedVersion;

    // The pin in this replica's store, or UnreadableLocalPin when the file exists but cannot be read. An unreadable file
    // thus differs from every pin the learner announces, and the next pin record overwrites it or an unpin deletes it.
    private long? LocalPin() =>
        StoreControlFiles.TryReadPinnedVersion(swapper.Store.RootDirectory, out long? pinned, out _) ? pinned : UnreadableLocalPin;

    // The learner removed its pin: this replica removes its own and serves the newest intact version it has, until
    // the download of a newer announced one (if any) replaces it.
    private void UnpinLocally(ModelVersionAnnouncement? target)
    {
        long previous = Math.Max(LocalPin() ?? 0, 0);
        StoreControlFiles.ClearPinnedVersion(swapper.Store.RootDirectory);

        // The pinned version keeps serving until the announced one is here. A newer local version that the learner no
        // longer announces, such as the one a rollback pinned away from, is never served on the way.
        ModelVersion? newestHere = swapper.Store.TryLoadLatest();
        if (newestHere is not null && (target is null || newestHere.Number == target.Version))
        {
            swapper.SwapToAny(newestHere);
        }

        long current = live.CurrentVersion ?? 0;
        LogUnpinned(logger, previous, current);
    }

    private async Task<InstallOutcome> TryInstallAsync(
        VersionDownloader downloader, ModelVersionAnnouncement target, bool pinned, int attempt, CancellationToken cancellation)
    {
        var running = new RunningDownload(target.Version, pinned, mayBeOvertaken: !lastDownloadOvertaken);
        lastDownloadOvertaken = false;
        lock (newestLock)
        {
            download = running;

            // A record read since the caller chose the target may have replaced it already.
            SignalSupersededDownload();
        }

        try
        {
            ModelVersion version = await DownloadUnlessSupersededAsync(downloader, target, running, cancellation).ConfigureAwait(false);
            if (pinned)
            {
                StoreControlFiles.WritePinnedVersion(swapper.Store, version.Number);
                swapper.SwapToAny(version);
                LogPinned(logger, version.Number);
            }
            else if (live.CurrentVersion is long current && IsWithdrawn(target, current))
            {
                // The live version is corrupt or deleted in the learner's store, so this older one replaces it, as a
                // rollback would. The withdrawn version stays in this replica's store.
                swapper.SwapToAny(version);
            }
            else
            {
                swapper.TrySwapToPublished(version);
            }

            ContinualServeMetrics.ModelDownloads.WithLabels("ok").Inc();
            LogDownloaded(logger, version.Number, attempt);

            // A version deleted later (by retention, or by another replica on the volume) and downloaded again onto a
            // full volume is then reported as a new failure.
            volumeFullVersion = null;
            reportedDirectoryChange = null;
        }
        catch (OperationCanceledException) when (running.Superseded.Task.IsCompleted && !cancellation.IsCancellationRequested)
        {
            // The downloader deleted the temporary directory before the cancellation reached this point. The metric
            // counts outcomes of the versions that were the target, so a cancelled download is not counted.
            (long next, bool nextPinned) = await running.Superseded.Task.ConfigureAwait(false);
            lastDownloadOvertaken = !pinned && !nextPinned;
            LogDownloadCancelled(logger, target.Version, next, nextPinned);
            return InstallOutcome.Cancelled;
        }
        catch (ReplicaVolumeFullException exception)
        {
            ContinualServeMetrics.ModelDownloads.WithLabels("failed").Inc();
            ReportVolumeFull(exception, attempt);
            return InstallOutcome.Failed;
        }
        catch (StoreDirectoryChangedException exception)
        {
            ContinualServeMetrics.ModelDownloads.WithLabels("failed").Inc();
            ReportStoreDirectoryChanged(exception, target.Version, attempt);
            return InstallOutcome.Failed;
        }
        catch (InvalidDataException exception)
        {
            ContinualServeMetrics.ModelDownloads.WithLabels("corrupt").Inc();
            LogCorrupt(logger, exception, target.Version, attempt);
            return InstallOutcome.Failed;
        }
        catch (Exception exception) when (exception is HttpRequestException or IOException or UnauthorizedAccessException
            or InvalidOperationException or ExternalException or TimeoutException
            or TaskCanceledException && !cancellation.IsCancellationRequested)
        {
            ContinualServeMetrics.ModelDownloads.WithLabels("failed").Inc();
            string from = downloader.StoreUrlFor(target) ?? "no store URL";
            if (IsTransferFailure(exception))
            {
                // Expected while the learner is away or misconfigured, and repeated on every retry, so the reason
                // alone is logged. Its stack trace would add nothing.
                LogDownloadFailed(logger, target.Version, from, attempt, DescribeFailure(exception));
            }
            else
            {
                LogDownloadFailedLocally(logger, exception, target.Version, from, attempt);
            }

            return InstallOutcome.Failed;
        }
        finally
        {
            lock (newestLock)
            {
                download = null;
            }
        }

        ApplyRetention(downloader);

        return InstallOutcome.Installed;
    }

    /// <summary>
    /// Runs the download of <paramref name="target"/>, and cancels it when a record makes another version the target
    /// first. A download that completes before its cancellation takes effect returns its version as usual. Swapping
    /// it in is still in order: an unpinned download is always of a version newer than the live one, and a pinned one
    /// is of a version that the learner pinned.
    /// </summary>
    /// <exception cref="OperationCanceledException">The download was cancelled, or the service is stopping.</exception>
    private static async Task<ModelVersion> DownloadUnlessSupersededAsync(
        VersionDownloader downloader, ModelVersionAnnouncement target, RunningDownload running, CancellationToken stoppingToken)
    {
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        Task<ModelVersion> install = downloader.InstallAsync(target, cancellation.Token);
        if (await Task.WhenAny(install, running.Superseded.Task).ConfigureAwait(false) != install)
        {
            await cancellation.CancelAsync().ConfigureAwait(false);
        }

        return await install.ConfigureAwait(false);
    }

    // Called under newestLock after a record changed the newest version or the pin. The consumer thread only completes
    // a task here, and the follow loop cancels its own download, so no download work runs on the consumer thread.
    private void SignalSupersededDownload()
    {
        ModelVersionAnnouncement? next = pin?.Pinned ?? newest;
        if (download is null || next is null || next.Version == download.Version)
        {
            return;
        }

        // A lower number while none is pinned comes from a learner whose newer versions are corrupt or deleted, so the
        // download in progress would fail or fetch weights the learner no longer announces.
        bool nextPinned = pin?.Pinned is not null;
        if (download.Pinned || nextPinned || download.MayBeOvertaken || next.Version < download.Version)
        {
            download.Superseded.TrySetResult((next.Version, nextPinned));
            return;
        }

        // Without this rule a learner that announces versions faster than a download takes would cancel every download,
        // and the replica would serve a stale version for as long as training runs.
        if (!download.KeptLogged)
        {
            download.KeptLogged = true;
            LogDownloadKept(logger, download.Version, next.Version);
        }
    }

    /// <summary>
    /// Logs a Kafka error of the version topic's consumer. During a broker outage librdkafka reports one at each
    /// reconnect attempt, many times a second, so after the first 10 only every 100th is logged, as the learner does.
    /// </summary>
    internal void ReportKafkaError(ErrorCode code, string reason)
    {
        if (kafkaErrorSampler.Count(out long count))
        {
            LogKafkaError(logger, code, reason, count);
        }
    }

    // A failure of the store or the network between them, as opposed to one on this server (its disk, its model load).
    // A body that ends early (HttpIOException) or a connection reset while the body is read (an IOException around a
    // SocketException) are the store's side, although both are IOExceptions like a failed write to the local disk.
    private static bool IsTransferFailure(Exception exception) =>
        exception is HttpRequestException or InvalidOperationException or TaskCanceledException or TimeoutException or HttpIOException
        || exception is IOException { InnerException: System.Net.Sockets.SocketException };

    // The new version is live already, so a version that retention cannot delete only takes space, and the replica goes
    // on. Each later download tries again.
    private void ApplyRetention(VersionDownloader downloader)
    {
        try
        {
            foreach (RetentionFailure failure in downloader.ApplyRetention(options.RetainedVersions, live.CurrentVersion ?? 0))
            {
                LogVersionNotDeleted(logger, failure.Version, failure.Path, failure.Error.Message);
            }
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            LogRetentionFailed(logger, exception, swapper.Store.RootDirectory);
        }
    }

    // A full volume stays full on most retries, so it is logged once per version, and later attempts at Debug.
    private void ReportVolumeFull(ReplicaVolumeFullException exception, int attempt)
    {
        if (exception.Version == volumeFullVersion)
        {
            LogVolumeStillFull(logger, exception.Version, exception.AvailableBytes, attempt);
            return;
        }

        volumeFullVersion = exception.Version;
        LogVolumeFull(logger, exception.Version, exception.Directory, exception.RequiredBytes, exception.AvailableBytes, attempt, exception.InnerException?.Message);
    }

    // The download is retried with backoff, so that a directory moved back is followed again without a restart. The
    // change stays until an operator acts, so it is logged once, and later attempts at Debug.
    private void ReportStoreDirectoryChanged(StoreDirectoryChangedException exception, long version, int attempt)
    {
        if (exception.Message == reportedDirectoryChange)
        {
            LogStoreDirectoryStillChanged(logger, version, exception.Directory, attempt);
            return;
        }

        reportedDirectoryChange = exception.Message;
        LogStoreDirectoryChanged(logger, exception, version, exception.Directory, attempt);
    }

    /// <summary>Waits for a newer announcement or until <paramref name="timeout"/>; returns true when one arrived.</summary>
    private async Task<bool> WaitForAnnouncementAsync(TimeSpan timeout, CancellationToken stoppingToken)
    {
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        waiting.CancelAfter(timeout);
        try
        {
            await announced.Reader.ReadAsync(waiting.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Waits for <paramref name="timeout"/>, or less when the service stops.</summary>
    private static async Task WaitAsync(TimeSpan timeout, CancellationToken stoppingToken)
    {
        try
        {
            await Task.Delay(timeout, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: the caller's loop ends.
        }
    }

    private void ConsumeAnnouncements(CancellationToken cancellation)
    {
        ConsumerConfig config = kafkaProperties.ApplyTo(
            KafkaDefaults.CreateConsumerConfig(options.BootstrapServers, "continualserve-replica-" + Guid.NewGuid().ToString("N")));
        config.EnablePartitionEof = true;
        using IConsumer<string?, byte[]?> consumer = new ConsumerBuilder<string?, byte[]?>(config)
            .SetErrorHandler((_, error) => ReportKafkaError(error.Code, error.Reason))
            .SetLogHandler(new KafkaClientLog(logger).OnLog)
            .Build();
        try
        {
            if (!AssignFromBeginning(consumer, cancellation))
            {
                return;
            }

            int failuresInRow = 0;
            while (!cancellation.IsCancellationRequested)
            {
                ConsumeResult<string?, byte[]?>? result = null;
                try
                {
                    result = ConsumeNext(consumer);
                    if (result is not null)
                    {
                        HandleRecord(result);
                    }

                    failuresInRow = 0;
                }
                catch (Exception exception) when (exception is not KafkaException { Error.IsFatal: true })
                {
                    // An exception on this thread would end the process, so one that no step expects is logged and the
                    // thread goes on. A fatal Kafka error still ends it because the consumer cannot be used again.
                    failuresInRow++;
                    TimeSpan backoff = FailureBackoff.After(failuresInRow);
                    if (result is null)
                    {
                        LogConsumeFailed(logger, exception, options.Topic, failuresInRow, backoff);
                    }
                    else
                    {
                        // Handling a record only parses it and updates this service's state in memory, so the same
                        // bytes would fail the same way again, and reading the record again would hold back every later
                        // one (a newer version, a pin). It is skipped. Downloads and disk writes, whose failures may
                        // pass, run in the follow loop, which keeps the announcement and retries it with backoff.
                        LogRecordSkipped(logger, exception, result.TopicPartitionOffset, failuresInRow, backoff);
                    }

                    cancellation.WaitHandle.WaitOne(backoff);
                }
            }
        }
        finally
        {
            consumer.Close();
        }
    }

    /// <summary>
    /// Assigns every partition of the topic from its first retained record. Partitions are assigned rather
    /// than subscribed so that each replica reads everything and no group rebalance delays a new replica.
    /// </summary>
    private bool AssignFromBeginning(IConsumer<string?, byte[]?> consumer, CancellationToken cancellation)
    {
        using IAdminClient admin = new AdminClientBuilder(kafkaProperties.ApplyTo(new AdminClientConfig { BootstrapServers = options.BootstrapServers }))
            .SetLogHandler(new KafkaClientLog(logger).OnLog)
            .Build();
        int waits = 0;
        while (!cancellation.IsCancellationRequested)
        {
            // GetMetadata throws when no broker responds. A broker that responds returns a missing topic, or another
            // problem with it, as the topic's error.
            Error? requestError = null;
            Error topicError = new(ErrorCode.UnknownTopicOrPart);
            try
            {
                TopicMetadata? topic = admin.GetMetadata(options.Topic, TimeSpan.FromSeconds(5)).Topics.FirstOrDefault();
                if (topic is not null && topic.Error.Code == ErrorCode.NoError && topic.Partitions.Count > 0)
                {
                    partitionsToCatchUp.UnionWith(topic.Partitions.Select(partition => partition.PartitionId));
                    consumer.Assign(topic.Partitions.Select(partition =>
                        new TopicPartitionOffset(options.Topic, partition.PartitionId, Offset.Beginning)));
                    return true;
                }

                if (topic is not null && topic.Error.Code != ErrorCode.NoError)
                {
                    topicError = topic.Error;
                }
            }
            catch (KafkaException exception) when (!exception.Error.IsFatal)
            {
                requestError = exception.Error;
                ReportKafkaError(exception.Error.Code, exception.Error.Reason);
            }

            if (waits++ % 30 == 0)
            {
                LogTopicWait(requestError, topicError);
            }

            cancellation.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
        }

        return false;
    }

    /// <summary>
    /// Logs why the version topic cannot be assigned yet: no broker responded to the metadata request
    /// (<paramref name="requestError"/> is set), the topic does not exist, or the broker reports another error for it.
    /// </summary>
    internal void LogTopicWait(Error? requestError, Error topicError)
    {
        if (requestError is not null)
        {
            LogBrokersUnreachable(logger, options.BootstrapServers, options.Topic, requestError.Code, requestError.Reason);
        }
        else if (topicError.Code == ErrorCode.UnknownTopicOrPart)
        {
            LogTopicMissing(logger, options.Topic);
        }
        else
        {
            LogTopicUnusable(logger, options.Topic, topicError.Code, topicError.Reason);
        }
    }

    // Returns the next record or end-of-partition event, or null when none arrived within 200 ms or Kafka reported an
    // error that is not fatal.
    private ConsumeResult<string?, byte[]?>? ConsumeNext(IConsumer<string?, byte[]?> consumer)
    {
        try
        {
            return consumer.Consume(TimeSpan.FromMilliseconds(200));
        }
        catch (ConsumeException exception) when (!exception.Error.IsFatal)
        {
            ReportKafkaError(exception.Error.Code, exception.Error.Reason);
            return null;
        }
    }

    private void HandleRecord(ConsumeResult<string?, byte[]?> result)
    {
        if (result.IsPartitionEOF)
        {
            MarkCaughtUp(result.Partition.Value);
            return;
        }

        if (ModelPinAnnouncement.IsPinKey(result.Message.Key))
        {
            ReceivePin(result);
            return;
        }

        ModelVersionAnnouncement? announcement = ModelVersionAnnouncement.TryParse(result.Message.Value, out string error);
        if (announcement is null)
        {
            LogInvalidAnnouncement(logger, result.TopicPartitionOffset, error);
            return;
        }

        if (!string.Equals(announcement.ModelName, modelName, StringComparison.Ordinal))
        {
            // The topic is keyed by model name and may carry other models, so log a warning once per other name.
            if (ignoredModels.Add(announcement.ModelName))
            {
                LogOtherModel(logger, announcement.ModelName, modelName, result.TopicPartitionOffset);
            }

            return;
        }

        // A learner announces its newest version again at each start, possibly from a new store URL (after a move to
        // https:// or another host), so a later record of the same version replaces the earlier one.
        // An older number replaces the newest one too when its store saved that newest number, because the learner's
        // newer versions are then corrupt or deleted, and the older one is its newest intact version.
        ModelVersionAnnouncement? newer;
        ModelVersionAnnouncement? withdrawn = null;
        lock (newestLock)
        {
            newer = newest is not null && newest.Version > announcement.Version ? newest : null;
            if (newer is not null && announcement.HighestSavedVersion >= newer.Version)
            {
                withdrawn = newer;
                newer = null;
            }

            if (newer is null)
            {
                newest = announcement;
                SignalSupersededDownload();
            }
        }

        if (newer is not null)
        {
            ReportOlderAnnouncement(announcement, newer, result.TopicPartitionOffset);
            return;
        }

        if (withdrawn is not null)
        {
            LogNewerVersionsWithdrawn(
                logger, announcement.Version, announcement.ModelName, result.TopicPartitionOffset, announcement.StoreUrl, withdrawn.Version, announcement.HighestSavedVersion);
        }

        // A replica that starts reads the topic's whole history, one record per earlier version where the topic is not
        // compacted yet, so those records are logged at Debug until it has read to the end.
        if (caughtUp)
        {
            LogAnnouncementReceived(logger, announcement.Version, announcement.ModelName, result.TopicPartitionOffset);
        }
        else
        {
            LogHistoricalAnnouncement(logger, announcement.Version, announcement.ModelName, result.TopicPartitionOffset);
        }
        announced.Writer.TryWrite(true);
    }

    // A learner numbers its versions upward within one store, so an older number usually comes from a learner that
    // started on another store and numbers from 1 again (or from a second learner on the topic). The replica still
    // follows only newer numbers, because its own store may keep the lower ones with other weights. The learner
    // announces every version, so the warning is logged once per newest version and store URL, and the rest at Debug.
    private void ReportOlderAnnouncement(ModelVersionAnnouncement announcement, ModelVersionAnnouncement newer, TopicPartitionOffset offset)
    {
        if (reportedOlderAnnouncements.Add((newer.Version, announcement.StoreUrl)))
        {
            LogOlderAnnouncement(logger, announcement.Version, announcement.ModelName, offset, announcement.StoreUrl, newer.Version, newer.StoreUrl);
        }
        else
        {
            LogOlderAnnouncementAgain(logger, announcement.Version, offset, newer.Version);
        }
    }

    // librdkafka reports the end of a partition each time the consumer reaches it, so only the first report counts.
    private void MarkCaughtUp(int partition)
    {
        if (caughtUp || !partitionsToCatchUp.Remove(partition) || partitionsToCatchUp.Count > 0)
        {
            return;
        }

        caughtUp = true;
        swapper.FollowsVersionTopic = true;
        LogCaughtUp(logger, options.Topic);
        announced.Writer.TryWrite(true);
    }

    // Pin records apply in the order they were written, so the last one read is the learner's current pin.
    private void ReceivePin(ConsumeResult<string?, byte[]?> result)
    {
        ModelPinAnnouncement? received = ModelPinAnnouncement.TryParse(result.Message.Value, out string error);
        if (received is null)
        {
            LogInvalidAnnouncement(logger, result.TopicPartitionOffset, error);
            return;
        }

        if (!string.Equals(received.ModelName, modelName, StringComparison.Ordinal))
        {
            return;
        }

        lock (newestLock)
        {
            pin = received;
            SignalSupersededDownload();
        }

        if (received.Pinned is null)
        {
            LogUnpinReceived(logger, received.ModelName, result.TopicPartitionOffset);
        }
        else
        {
            LogPinReceived(logger, received.Pinned.Version, received.ModelName, result.TopicPartitionOffset);
        }

        announced.Writer.TryWrite(true);
    }

    /// <summary>
    /// Joins the messages of an exception and its inner exceptions. HttpClient reports a rejected certificate as "The SSL
    /// connection could not be established, see inner exception.", and only the inner message gives the cause, for example
    /// RemoteCertificateNameMismatch. A message that repeats one already written is left out.
    /// </summary>
    internal static string DescribeFailure(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var reason = new System.Text.StringBuilder();
        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            string message = current.Message.Replace(", see inner exception.", ".", StringComparison.Ordinal).Trim();
            if (message.Length == 0 || reason.ToString().Contains(message.TrimEnd('.'), StringComparison.Ordinal))
            {
                continue;
            }

            if (reason.Length > 0 && reason[^1] == '.')
            {
                reason.Length--;
            }

            if (reason.Length > 0)
            {
                reason.Append(": ");
            }

            reason.Append(message);
        }

        return reason.ToString();
    }

    [LoggerMessage(EventId = 489, Level = LogLevel.Warning, Message = "Ignoring version {Version} of {Model} announced at {Offset} from store '{StoreUrl}': this replica already read the announcement of version {Newest} from store '{NewestStoreUrl}', and it follows only newer versions. A learner that started on a new or emptied store numbers its versions from 1 again, and replicas ignore them until it passes version {Newest}; a replica without a live version stays unready meanwhile. Restart the learner on its previous store, or give the new learner and the replicas a new version topic (--version-topic) and the replicas empty store directories")]
    private static partial void LogOlderAnnouncement(ILogger logger, long version, string model, TopicPartitionOffset offset, string storeUrl, long newest, string newestStoreUrl);

    [LoggerMessage(EventId = 294, Level = LogLevel.Warning, Message = "Version {Version} of {Model} announced at {Offset} from store '{StoreUrl}' replaces version {Withdrawn}, the newest announced before: that store saved versions up to {Highest}, and version {Version} is the newest it still has intact. This replica serves version {Version}, in place of version {Withdrawn} if it serves that one, and follows newer versions again. The learner logs error 101 with the reason for each corrupt version")]
    private static partial void LogNewerVersionsWithdrawn(ILogger logger, long version, string model, TopicPartitionOffset offset, string storeUrl, long withdrawn, long highest);

    [LoggerMessage(EventId = 498, Level = LogLevel.Debug, Message = "Ignoring version {Version} announced at {Offset}, older than version {Newest}")]
    private static partial void LogOlderAnnouncementAgain(ILogger logger, long version, TopicPartitionOffset offset, long newest);

    [LoggerMessage(EventId = 488, Level = LogLevel.Information, Message = "Version {Target} was announced during the download of version {Version}, which goes on because the download before it was cancelled for a newer version")]
    private static partial void LogDownloadKept(ILogger logger, long version, long target);

    [LoggerMessage(EventId = 487, Level = LogLevel.Information, Message = "Cancelled the download of version {Version} and deleted its partial files: the version topic made version {Target} the one to serve (pinned: {Pinned})")]
    private static partial void LogDownloadCancelled(ILogger logger, long version, long target, bool pinned);

    [LoggerMessage(EventId = 469, Level = LogLevel.Information, Message = "Version {Version} of {Model} announced as pinned at {Offset}")]
    private static partial void LogPinReceived(ILogger logger, long version, string model, TopicPartitionOffset offset);

    [LoggerMessage(EventId = 472, Level = LogLevel.Information, Message = "No version of {Model} pinned, as announced at {Offset}")]
    private static partial void LogUnpinReceived(ILogger logger, string model, TopicPartitionOffset offset);

    [LoggerMessage(EventId = 470, Level = LogLevel.Information, Message = "Serving pinned version {Version}, as the learner announced")]
    private static partial void LogPinned(ILogger logger, long version);

    [LoggerMessage(EventId = 471, Level = LogLevel.Information, Message = "The learner removed the pin of version {Previous}; serving version {Version} until the newest announced one is here, and following new versions again")]
    private static partial void LogUnpinned(ILogger logger, long previous, long version);

    [LoggerMessage(EventId = 473, Level = LogLevel.Information, Message = "Read version topic {Topic} up to its end; following the learner's newest version and pin")]
    private static partial void LogCaughtUp(ILogger logger, string topic);

    [LoggerMessage(EventId = 460, Level = LogLevel.Information, Message = "Following version topic {Topic} on {BootstrapServers}")]
    private static partial void LogStarted(ILogger logger, string topic, string bootstrapServers);

    [LoggerMessage(EventId = 475, Level = LogLevel.Information, Message = "Downloaded and verified version {Version} (attempt {Attempt})")]
    private static partial void LogDownloaded(ILogger logger, long version, int attempt);

    [LoggerMessage(EventId = 476, Level = LogLevel.Debug, Message = "Version {Version} of {Model} was announced at {Offset}, before this replica started")]
    private static partial void LogHistoricalAnnouncement(ILogger logger, long version, string model, TopicPartitionOffset offset);

    [LoggerMessage(EventId = 461, Level = LogLevel.Information, Message = "Version {Version} of {Model} announced at {Offset}")]
    private static partial void LogAnnouncementReceived(ILogger logger, long version, string model, TopicPartitionOffset offset);

    [LoggerMessage(EventId = 462, Level = LogLevel.Error, Message = "Downloaded version {Version} is corrupt and was rejected (attempt {Attempt}). Retrying with backoff")]
    private static partial void LogCorrupt(ILogger logger, Exception exception, long version, int attempt);

    [LoggerMessage(EventId = 463, Level = LogLevel.Warning, Message = "Download of version {Version} from {StoreUrl} failed (attempt {Attempt}): {Reason} Retrying with backoff")]
    private static partial void LogDownloadFailed(ILogger logger, long version, string storeUrl, int attempt, string reason);

    [LoggerMessage(EventId = 474, Level = LogLevel.Warning, Message = "Download of version {Version} from {StoreUrl} failed on this server (attempt {Attempt}), writing or loading it. Retrying with backoff")]
    private static partial void LogDownloadFailedLocally(ILogger logger, Exception exception, long version, string storeUrl, int attempt);

    [LoggerMessage(EventId = 464, Level = LogLevel.Warning, Message = "Ignoring invalid announcement at {Offset}: {Error}")]
    private static partial void LogInvalidAnnouncement(ILogger logger, TopicPartitionOffset offset, string error);

    [LoggerMessage(EventId = 465, Level = LogLevel.Warning, Message = "Version topic {Topic} does not exist yet; waiting for the learner to create it")]
    private static partial void LogTopicMissing(ILogger logger, string topic);

    [LoggerMessage(EventId = 404, Level = LogLevel.Warning, Message = "Cannot reach the Kafka brokers {BootstrapServers} to look up version topic {Topic}: the metadata request failed with {Code} ({Reason}). Check that the brokers run and that Distribution:BootstrapServers names addresses this server can reach. The lookup is retried until the brokers respond")]
    private static partial void LogBrokersUnreachable(ILogger logger, string bootstrapServers, string topic, ErrorCode code, string reason);

    [LoggerMessage(EventId = 405, Level = LogLevel.Warning, Message = "Version topic {Topic} cannot be read yet: the broker reports {Code} ({Reason}) for it. Retrying every second")]
    private static partial void LogTopicUnusable(ILogger logger, string topic, ErrorCode code, string reason);

    [LoggerMessage(EventId = 468, Level = LogLevel.Warning, Message = "Could not delete old versions in {Directory}; retrying after the next download")]
    private static partial void LogRetentionFailed(ILogger logger, Exception exception, string directory);

    [LoggerMessage(EventId = 483, Level = LogLevel.Warning, Message = "Could not delete old version {Version} at {Path}: {Reason} The version stays in the store, and retention tries again after the next download")]
    private static partial void LogVersionNotDeleted(ILogger logger, long version, string path, string reason);

    [LoggerMessage(EventId = 484, Level = LogLevel.Warning, Message = "The reader of version topic {Topic} did not stop within {Timeout}; the replica stops without waiting for it")]
    private static partial void LogConsumerStillRunning(ILogger logger, string topic, TimeSpan timeout);

    [LoggerMessage(EventId = 467, Level = LogLevel.Warning, Message = "Ignoring announcements of model {AnnouncedModel} at {Offset}: this server serves {Model} (Server:ModelName)")]
    private static partial void LogOtherModel(ILogger logger, string announcedModel, string model, TopicPartitionOffset offset);

    [LoggerMessage(EventId = 477, Level = LogLevel.Error, Message = "Version {Version} does not fit in {Directory}: it needs {RequiredBytes} bytes for its weights (0 when the announcement gives no size) and {AvailableBytes} bytes are free (attempt {Attempt}, {Error}). The live version keeps serving and the download is retried with backoff; free space, or give the volume (and any disk quota on it) room for Distribution:RetainedVersions + 1 versions")]
    private static partial void LogVolumeFull(ILogger logger, long version, string directory, long requiredBytes, long availableBytes, int attempt, string? error);

    [LoggerMessage(EventId = 478, Level = LogLevel.Debug, Message = "Version {Version} still does not fit in the store volume, which has {AvailableBytes} bytes free (attempt {Attempt})")]
    private static partial void LogVolumeStillFull(ILogger logger, long version, long availableBytes, int attempt);

    [LoggerMessage(EventId = 496, Level = LogLevel.Error, Message = "Version {Version} cannot be installed, because the store directory {Directory} was removed, renamed or replaced after this server opened it (attempt {Attempt}). It is not created again and nothing is downloaded into it. The live version keeps serving and the download is retried with backoff; move the original directory back, or restart the server")]
    private static partial void LogStoreDirectoryChanged(ILogger logger, Exception exception, long version, string directory, int attempt);

    [LoggerMessage(EventId = 497, Level = LogLevel.Debug, Message = "Version {Version} still cannot be installed, because the store directory {Directory} is not the one this server opened (attempt {Attempt})")]
    private static partial void LogStoreDirectoryStillChanged(ILogger logger, long version, string directory, int attempt);

    [LoggerMessage(EventId = 479, Level = LogLevel.Error, Message = "Following the version topic failed with an unexpected error ({Failures} in a row); the live version keeps serving, and the replica tries again in {Delay}")]
    private static partial void LogFollowFailed(ILogger logger, Exception exception, int failures, TimeSpan delay);

    [LoggerMessage(EventId = 490, Level = LogLevel.Error, Message = "Reading version topic {Topic} failed with an unexpected error ({Failures} in a row); reading goes on in {Delay}")]
    private static partial void LogConsumeFailed(ILogger logger, Exception exception, string topic, int failures, TimeSpan delay);

    [LoggerMessage(EventId = 486, Level = LogLevel.Error, Message = "Skipped the record at {Offset} of the version topic: handling it failed with an unexpected error ({Failures} in a row). Reading goes on with the next record in {Delay}")]
    private static partial void LogRecordSkipped(ILogger logger, Exception exception, TopicPartitionOffset offset, int failures, TimeSpan delay);

    [LoggerMessage(EventId = 491, Level = LogLevel.Information, Message = "Deleted {Path}, the temporary directory of an interrupted download")]
    private static partial void LogAbandonedDownloadRemoved(ILogger logger, string path);

    [LoggerMessage(EventId = 492, Level = LogLevel.Warning, Message = "Could not delete the temporary directories of interrupted downloads in {Directory}; they are tried again at the next start")]
    private static partial void LogAbandonedDownloadsKept(ILogger logger, Exception exception, string directory);

    [LoggerMessage(EventId = 485, Level = LogLevel.Warning, Message = "Could not delete {Path}, the temporary directory of an interrupted download: {Reason} The other ones were deleted, and it is tried again at the next start")]
    private static partial void LogAbandonedDownloadNotDeleted(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 466, Level = LogLevel.Warning, Message = "Kafka error {Code} on the version topic: {Reason} (error {Errors} since the start, of which the first 10 and every 100th are logged)")]
    private static partial void LogKafkaError(ILogger logger, ErrorCode code, string reason, long errors);

    private enum InstallOutcome
    {
        Installed,
        Failed,

        // A record made another version the target while the download ran.
        Cancelled,
    }

    /// <summary>A download in progress, and the version and pin state of the target that replaced it, once one did.</summary>
    private sealed class RunningDownload(long version, bool pinned, bool mayBeOvertaken)
    {
        public long Version { get; } = version;

        // Whether the download is of a pinned version.
        public bool Pinned { get; } = pinned;

        // Whether a newer version announced while none is pinned cancels the download. A pin or an unpin that makes
        // another version the target always does.
        public bool MayBeOvertaken { get; } = mayBeOvertaken;

        // Whether event 488 was logged for this download, so that it is logged once however many versions follow.
        public bool KeptLogged { get; set; }

        // Continuations run on the thread pool, so the consumer thread that completes it goes on reading at once.
        public TaskCompletionSource<(long Version, bool Pinned)> Superseded { get; } =
            new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
