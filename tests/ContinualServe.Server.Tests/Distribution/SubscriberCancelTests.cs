using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>
/// A replica's version subscriber whose download stalls in the weights of one version, or is slowed for every version,
/// while the version topic names another one to serve. A stall lasts longer than each test waits, so only a cancelled
/// download lets such a test pass.
/// </summary>
public sealed class SubscriberCancelTests : IDisposable
{
    private const string Topic = "model-versions";
    private const int DownloadCancelledEvent = 487;
    private const int DownloadKeptEvent = 488;
    private static readonly TimeSpan ServeTimeout = TimeSpan.FromSeconds(30);

    private readonly string root = Directory.CreateDirectory(
        Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"))).FullName;

    private readonly ModelStore source;

    public SubscriberCancelTests()
    {
        source = new ModelStore(Path.Combine(root, "learner"));
        foreach (int seed in new[] { 7, 8 })
        {
            torch.manual_seed(seed);
            using nn.Module<Tensor, Tensor> module = Model.ModelFactory.Create(RunningServer.Spec);
            source.Save(RunningServer.Spec, module, new ModelManifest());
        }
    }

    public void Dispose() => Directory.Delete(root, recursive: true);

    private string ReplicaDirectory => Path.Combine(root, "replica");

    // The download timeout is a minute, so without the cancellation the replica would reach version 2 only after the
    // stalled download of version 1 timed out.
    [Fact(Timeout = 90_000)]
    public async Task NewerVersionCancelsDownload()
    {
        var stall = new StoreServer.StalledWeights(version: 1);
        (WebApplication store, string storeUrl) = await StoreServer.StartStallingAsync(source, stall);
        await using Replica replica = await Replica.StartAsync(this, store, storeUrl, publisher => publisher.Publish(Version(1)));
        Task requested = await Task.WhenAny(stall.Requested.Task, Task.Delay(ServeTimeout));
        replica.Publish(publisher => publisher.Publish(Version(2)));
        bool served = await WaitUntilAsync(() => replica.Live.CurrentVersion == 2, ServeTimeout);
        Task aborted = await Task.WhenAny(stall.Aborted.Task, Task.Delay(ServeTimeout));
        await replica.StopAsync();

        requested.ShouldBe(stall.Requested.Task, "the replica did not request the weights of version 1 within 30 s");
        served.ShouldBeTrue("the replica did not serve version 2 within 30 s of its announcement");
        aborted.ShouldBe(stall.Aborted.Task, "the replica did not close its stalled request for version 1's weights");
        replica.Logger.Entries.Where(entry => entry.EventId == DownloadCancelledEvent).ShouldHaveSingleItem().Message.ShouldBe(
            "Cancelled the download of version 1 and deleted its partial files: "
            + "the version topic made version 2 the one to serve (pinned: False)");
        new ModelStore(ReplicaDirectory).ListVersionNumbers().ShouldBe([2L]);
        Directory.GetDirectories(ReplicaDirectory, ".download-*").ShouldBeEmpty();
    }

    // A rollback on the learner pins an older version while the replica downloads the newest one. The pin cancels the
    // download, and the replica serves the pinned version.
    [Fact(Timeout = 90_000)]
    public async Task PinOfOtherVersionCancelsDownload()
    {
        var stall = new StoreServer.StalledWeights(version: 2);
        (WebApplication store, string storeUrl) = await StoreServer.StartStallingAsync(source, stall);
        await using Replica replica = await Replica.StartAsync(this, store, storeUrl, publisher => publisher.Publish(Version(2)));
        Task requested = await Task.WhenAny(stall.Requested.Task, Task.Delay(ServeTimeout));
        replica.Publish(publisher => publisher.PublishPin(RunningServer.Spec.Name, Version(1)));
        bool served = await WaitUntilAsync(() => replica.Live.CurrentVersion == 1, ServeTimeout);
        await replica.StopAsync();

        requested.ShouldBe(stall.Requested.Task, "the replica did not request the weights of version 2 within 30 s");
        served.ShouldBeTrue("the replica did not serve the pinned version 1 within 30 s of the pin");
        replica.Logger.Entries.Where(entry => entry.EventId == DownloadCancelledEvent).ShouldHaveSingleItem().Message.ShouldBe(
            "Cancelled the download of version 2 and deleted its partial files: "
            + "the version topic made version 1 the one to serve (pinned: True)");
        StoreControlFiles.TryReadPinnedVersion(ReplicaDirectory, out long? pinned, out _).ShouldBeTrue();
        pinned.ShouldBe(1);
        new ModelStore(ReplicaDirectory).ListVersionNumbers().ShouldBe([1L]);
        Directory.GetDirectories(ReplicaDirectory, ".download-*").ShouldBeEmpty();
    }

    // The learner removes its pin of version 1 while the replica downloads it, and version 2 is the newest. The unpin
    // cancels the download, and the replica serves version 2 without a pin.
    [Fact(Timeout = 90_000)]
    public async Task UnpinCancelsPinnedDownload()
    {
        var stall = new StoreServer.StalledWeights(version: 1);
        (WebApplication store, string storeUrl) = await StoreServer.StartStallingAsync(source, stall);
        await using Replica replica = await Replica.StartAsync(this, store, storeUrl, publisher =>
        {
            publisher.Publish(Version(2));
            publisher.PublishPin(RunningServer.Spec.Name, Version(1));
        });
        Task requested = await Task.WhenAny(stall.Requested.Task, Task.Delay(ServeTimeout));
        replica.Publish(publisher => publisher.PublishPin(RunningServer.Spec.Name, null));
        bool served = await WaitUntilAsync(() => replica.Live.CurrentVersion == 2, ServeTimeout);
        await replica.StopAsync();

        requested.ShouldBe(stall.Requested.Task, "the replica did not request the weights of the pinned version 1 within 30 s");
        served.ShouldBeTrue("the replica did not serve version 2 within 30 s of the unpin");
        replica.Logger.Entries.Where(entry => entry.EventId == DownloadCancelledEvent).ShouldHaveSingleItem().Message.ShouldBe(
            "Cancelled the download of version 1 and deleted its partial files: "
            + "the version topic made version 2 the one to serve (pinned: False)");
        StoreControlFiles.TryReadPinnedVersion(ReplicaDirectory, out long? pinned, out _).ShouldBeTrue();
        pinned.ShouldBeNull();
        new ModelStore(ReplicaDirectory).ListVersionNumbers().ShouldBe([2L]);
        Directory.GetDirectories(ReplicaDirectory, ".download-*").ShouldBeEmpty();
    }

    // A learner that publishes a version during every download, as one that publishes about once a second does for a
    // replica behind a slow link. A newer version cancels only a download that does not follow a cancelled one, so every
    // other download completes and the replica serves newer versions while the announcements go on.
    [Fact(Timeout = 90_000)]
    public async Task AnnouncementDuringEveryDownloadStillServes()
    {
        const long lastVersion = 8;
        SaveVersionsUpTo(lastVersion);
        var slow = new StoreServer.SlowWeights(TimeSpan.FromSeconds(2));
        (WebApplication store, string storeUrl) = await StoreServer.StartSlowAsync(source, slow);
        await using Replica replica = await Replica.StartAsync(this, store, storeUrl, publisher => publisher.Publish(Version(1)));
        using var requestTimeout = new CancellationTokenSource(ServeTimeout);
        var requested = new List<long>();
        long announced = 1;
        long? served = null;
        while (announced < lastVersion)
        {
            requested.Add(await slow.Requests.Reader.ReadAsync(requestTimeout.Token));
            served = replica.Live.CurrentVersion;
            if (served >= 4)
            {
                break;
            }

            announced++;
            replica.Publish(publisher => publisher.Publish(Version(announced)));
        }

        await replica.StopAsync();

        served.ShouldBe(4L, $"the replica served no version from 4 on while versions up to {announced} were announced, one during each download");
        requested.ShouldBe([1L, 2L, 3L, 4L, 5L]);
        replica.Logger.Entries.Where(entry => entry.EventId == DownloadCancelledEvent).Select(entry => entry.Message).ShouldBe(
        [
            "Cancelled the download of version 1 and deleted its partial files: "
            + "the version topic made version 2 the one to serve (pinned: False)",
            "Cancelled the download of version 3 and deleted its partial files: "
            + "the version topic made version 4 the one to serve (pinned: False)",
        ]);
        replica.Logger.Entries.Where(entry => entry.EventId == DownloadKeptEvent).Select(entry => entry.Message).ShouldBe(
        [
            "Version 3 was announced during the download of version 2, which goes on because the download before it "
            + "was cancelled for a newer version",
            "Version 5 was announced during the download of version 4, which goes on because the download before it "
            + "was cancelled for a newer version",
        ]);
    }

    // A rollback must not wait for a slow download, so a pin cancels even the download that a newer version may not
    // cancel. The store holds back the weights for 2 minutes until the pin, and then sends them at once.
    [Fact(Timeout = 90_000)]
    public async Task PinCancelsDownloadAfterCancelledOne()
    {
        var slow = new StoreServer.SlowWeights(TimeSpan.FromMinutes(2));
        (WebApplication store, string storeUrl) = await StoreServer.StartSlowAsync(source, slow);
        await using Replica replica = await Replica.StartAsync(this, store, storeUrl, publisher => publisher.Publish(Version(1)));
        using var requestTimeout = new CancellationTokenSource(ServeTimeout);
        long firstRequest = await slow.Requests.Reader.ReadAsync(requestTimeout.Token);
        replica.Publish(publisher => publisher.Publish(Version(2)));
        long secondRequest = await slow.Requests.Reader.ReadAsync(requestTimeout.Token);
        slow.Delay = TimeSpan.Zero;
        replica.Publish(publisher => publisher.PublishPin(RunningServer.Spec.Name, Version(1)));
        bool served = await WaitUntilAsync(() => replica.Live.CurrentVersion == 1, ServeTimeout);
        await replica.StopAsync();

        firstRequest.ShouldBe(1);
        secondRequest.ShouldBe(2);
        served.ShouldBeTrue("the replica did not serve the pinned version 1 within 30 s of the pin");
        replica.Logger.Entries.Where(entry => entry.EventId == DownloadCancelledEvent).Select(entry => entry.Message).ShouldBe(
        [
            "Cancelled the download of version 1 and deleted its partial files: "
            + "the version topic made version 2 the one to serve (pinned: False)",
            "Cancelled the download of version 2 and deleted its partial files: "
            + "the version topic made version 1 the one to serve (pinned: True)",
        ]);
        new ModelStore(ReplicaDirectory).ListVersionNumbers().ShouldBe([1L]);
    }

    private ModelVersionSubscriber CreateSubscriber(string bootstrapServers, LiveModel live, ILogger<ModelVersionSubscriber> logger)
    {
        var options = new DistributionOptions
        {
            BootstrapServers = bootstrapServers,
            Topic = Topic,
            DownloadTimeout = TimeSpan.FromMinutes(1),
        };
        var serverOptions = Options.Create(new ServerOptions
        {
            ModelName = RunningServer.Spec.Name,
            StoreDirectory = ReplicaDirectory,
            Device = "cpu",
        });
        var swapper = new ModelSwapper(live, serverOptions, NullLogger<ModelSwapper>.Instance);
        return new ModelVersionSubscriber(Options.Create(options), serverOptions, swapper, live, KafkaClientProperties.None, logger);
    }

    private void SaveVersionsUpTo(long lastVersion)
    {
        for (int seed = 9; source.ListVersionNumbers().Max() < lastVersion; seed++)
        {
            torch.manual_seed(seed);
            using nn.Module<Tensor, Tensor> module = Model.ModelFactory.Create(RunningServer.Spec);
            source.Save(RunningServer.Spec, module, new ModelManifest());
        }
    }

    private ModelVersion Version(long number)
    {
        source.TryLoad(number, out ModelVersion? version).ShouldBeTrue();
        return version!;
    }

    private static async Task<bool> WaitUntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50));
        }

        return true;
    }

    /// <summary>
    /// A store server, an embedded broker with the version topic, a publisher of the learner's records and a started
    /// subscriber of the replica, disposed together.
    /// </summary>
    private sealed class Replica : IAsyncDisposable
    {
        private readonly WebApplication store;
        private readonly EmbeddedKafkaBroker broker;
        private readonly ModelVersionPublisher publisher;
        private readonly ModelVersionSubscriber subscriber;

        private Replica(
            WebApplication store, EmbeddedKafkaBroker broker, ModelVersionPublisher publisher, ModelVersionSubscriber subscriber,
            LiveModel live, LogRecorder<ModelVersionSubscriber> logger)
        {
            this.store = store;
            this.broker = broker;
            this.publisher = publisher;
            this.subscriber = subscriber;
            Live = live;
            Logger = logger;
        }

        public LiveModel Live { get; }

        public LogRecorder<ModelVersionSubscriber> Logger { get; }

        /// <summary>Publishes the records that <paramref name="first"/> writes, then starts the subscriber.</summary>
        public static async Task<Replica> StartAsync(
            SubscriberCancelTests test, WebApplication store, string storeUrl, Action<ModelVersionPublisher> first)
        {
            EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic(Topic, 1);
            var publisher = new ModelVersionPublisher(
                broker.BootstrapServers, new DistributionOptions { StoreUrl = storeUrl, Topic = Topic }, NullLogger<ModelVersionPublisher>.Instance);
            var logger = new LogRecorder<ModelVersionSubscriber>(LogLevel.Information);
            var live = new LiveModel();
            var replica = new Replica(store, broker, publisher, test.CreateSubscriber(broker.BootstrapServers, live, logger), live, logger);
            replica.Publish(first);
            await replica.subscriber.StartAsync(CancellationToken.None);
            return replica;
        }

        /// <summary>Publishes the records that <paramref name="write"/> writes and waits until the broker has them.</summary>
        public void Publish(Action<ModelVersionPublisher> write)
        {
            write(publisher);
            publisher.Flush(TimeSpan.FromSeconds(10)).ShouldBe(0);
        }

        public Task StopAsync() => subscriber.StopAsync(CancellationToken.None);

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            subscriber.Dispose();
            Live.Dispose();
            publisher.Dispose();
            broker.Dispose();
            await store.DisposeAsync();
        }
    }
}
