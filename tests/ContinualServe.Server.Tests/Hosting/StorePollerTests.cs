using System.Collections.Concurrent;
using System.Diagnostics;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Server.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Hosting;

/// <summary>The store poller of a server without a version topic, on a store directory that disappears.</summary>
public sealed class StorePollerTests : IDisposable
{
    private const int StoreDirectoryChangedEventId = 107;
    private const int PollFailedEventId = 410;
    private const int PollFailedUnexpectedlyEventId = 411;
    private const int MissingStorePolls = 10;

    // Each failed poll waits out its backoff (1 s, then 2 s) before the next one starts.
    private const int FailedPolls = 2;
    private static readonly TimeSpan PollWaitLimit = TimeSpan.FromSeconds(10);
    private readonly string store = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(store))
        {
            Directory.Delete(store, recursive: true);
        }
    }

    // A missing store fails every poll with the same error for as long as the volume is gone, so the error is logged
    // when it appears, and again only after a poll succeeded in between.
    [Fact]
    public async Task RepeatedFailureIsLoggedOnce()
    {
        var options = Options.Create(new ServerOptions
        {
            StoreDirectory = store,
            Device = "cpu",
            IntraOpThreads = 0,
            StorePollInterval = TimeSpan.FromMilliseconds(20),
        });
        var swapper = new ModelSwapper(new LiveModel(), options, NullLogger<ModelSwapper>.Instance);
        var logger = new EventCountingLogger();
        using var poller = new StorePoller(swapper, options, logger);
        Directory.Delete(store);

        await poller.StartAsync(CancellationToken.None);
        await WaitForPollsAsync(poller, MissingStorePolls);
        int whileMissing = logger.Count(PollFailedEventId);
        Directory.CreateDirectory(store);
        // The poll in progress may have found the store still missing, so the one after it is the first that must succeed.
        await WaitForPollsAsync(poller, 2);
        Directory.Delete(store);
        await WaitForPollsAsync(poller, MissingStorePolls);
        await poller.StopAsync(CancellationToken.None);

        whileMissing.ShouldBe(1, $"warnings during the first {MissingStorePolls} polls of the missing store");
        logger.Count(PollFailedEventId).ShouldBe(2, "warnings after the store came back for a poll and went missing again");
    }

    // A learner that keeps its store open rejects a directory moved into the store's path, so a server reports it too,
    // once for as long as the replacement stays, and again when the path changes once more. A poll may run between two
    // steps of a replacement and find the path missing for a moment, so the checks count each kind of change apart.
    [Fact]
    public async Task ReplacedStoreIsLoggedOnce()
    {
        var options = Options.Create(new ServerOptions
        {
            StoreDirectory = store,
            Device = "cpu",
            IntraOpThreads = 0,
            StorePollInterval = TimeSpan.FromMilliseconds(20),
        });
        var swapper = new ModelSwapper(new LiveModel(), options, NullLogger<ModelSwapper>.Instance);
        var logger = new EventCountingLogger();
        using var poller = new StorePoller(swapper, options, logger);
        string moved = store + ".moved";

        await poller.StartAsync(CancellationToken.None);
        await WaitForPollsAsync(poller, 2);
        int beforeRename = logger.Count(StoreDirectoryChangedEventId);
        Directory.Move(store, moved);
        Directory.CreateDirectory(store);
        await WaitForPollsAsync(poller, MissingStorePolls);
        int whileReplaced = logger.Count(StoreDirectoryChangedEventId, "replaced by another directory");
        Directory.Delete(store);
        Directory.Move(moved, store);
        await WaitForPollsAsync(poller, 2);
        int missingBeforeSecondRename = logger.Count(StoreDirectoryChangedEventId, "no longer exists");
        Directory.Move(store, moved);
        await WaitForPollsAsync(poller, MissingStorePolls);
        await poller.StopAsync(CancellationToken.None);
        Directory.Delete(moved);

        beforeRename.ShouldBe(0, "errors before the store directory was renamed");
        whileReplaced.ShouldBe(1, $"errors during {MissingStorePolls} polls of the replacement directory");
        int missingAfterSecondRename = logger.Count(StoreDirectoryChangedEventId, "no longer exists") - missingBeforeSecondRename;
        missingAfterSecondRename.ShouldBe(1, "errors after the original came back and was renamed again");
    }

    // An error that the poller does not expect fails one poll, not the poller: each failure is logged with its backoff,
    // the live version keeps serving, and the first poll after the last failure swaps in the version saved meanwhile.
    [Fact]
    public async Task UnexpectedFailureIsRetried()
    {
        var options = Options.Create(new ServerOptions
        {
            ModelName = RunningServer.Spec.Name,
            StoreDirectory = store,
            Device = "cpu",
            IntraOpThreads = 0,
            StorePollInterval = TimeSpan.FromMilliseconds(20),
        });
        var writer = new ModelStore(store, retainedVersions: 100);
        RunningServer.SaveVersion(writer, 1);
        using var live = new LiveModel();
        var swapper = new ModelSwapper(live, options, NullLogger<ModelSwapper>.Instance);
        swapper.TrySwapToLatest().ShouldBeTrue();
        RunningServer.SaveVersion(writer, 2);
        var logger = new EventCountingLogger();
        using var poller = new StorePoller(swapper, options, logger);

        // Each poll records the version that serves when it starts, so the failed polls show what served meanwhile.
        var servedAtPoll = new ConcurrentQueue<long?>();
        poller.BeforePoll = () =>
        {
            servedAtPoll.Enqueue(live.CurrentVersion);
            if (servedAtPoll.Count <= FailedPolls)
            {
                throw new InvalidOperationException("injected poll failure");
            }
        };

        await poller.StartAsync(CancellationToken.None);
        var clock = Stopwatch.StartNew();
        while (live.CurrentVersion != 2)
        {
            clock.Elapsed.ShouldBeLessThan(PollWaitLimit, "the poller did not swap in version 2 after the failed polls");
            await Task.Delay(5);
        }

        await WaitForPollsAsync(poller, 2);
        await poller.StopAsync(CancellationToken.None);

        servedAtPoll.Take(FailedPolls + 1).ShouldAllBe(version => version == 1, "versions served at the failed polls and the first poll after them");
        logger.Count(PollFailedUnexpectedlyEventId).ShouldBe(FailedPolls);
        logger.Count(PollFailedUnexpectedlyEventId, "injected poll failure").ShouldBe(FailedPolls, "errors logged with the injected exception");
        logger.Count(PollFailedEventId).ShouldBe(0);
    }

    /// <summary>Waits until <paramref name="poller"/> has finished <paramref name="polls"/> more polls than it has now.</summary>
    private static async Task WaitForPollsAsync(StorePoller poller, int polls)
    {
        long target = poller.CompletedPolls + polls;
        var clock = Stopwatch.StartNew();
        while (poller.CompletedPolls < target)
        {
            clock.Elapsed.ShouldBeLessThan(PollWaitLimit, $"the poller did not finish {polls} polls in time");
            await Task.Delay(5);
        }
    }

    private sealed class EventCountingLogger : ILogger<StorePoller>
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<(int EventId, string? Error)> events = new();

        public int Count(int eventId) => events.Count(logged => logged.EventId == eventId);

        public int Count(int eventId, string errorText) =>
            events.Count(logged => logged.EventId == eventId && logged.Error?.Contains(errorText, StringComparison.Ordinal) == true);

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            events.Enqueue((eventId.Id, exception?.Message));
    }
}
