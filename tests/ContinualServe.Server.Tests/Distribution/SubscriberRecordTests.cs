using System.Text;
using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>
/// A replica's version subscriber that reads records from an embedded Kafka broker and downloads from stores on
/// 127.0.0.1: records it cannot handle, a store that is briefly unavailable, and a store below the minimum rate.
/// </summary>
public sealed class SubscriberRecordTests : IDisposable
{
    private const string Topic = "model-versions";
    private const int RecordSkippedEvent = 486;
    private const int InvalidAnnouncementEvent = 464;
    private const int HistoricalAnnouncementEvent = 476;
    private const int ConsumeFailedEvent = 490;
    private const int DownloadFailedEvent = 463;
    private const int LocalDownloadFailureEvent = 474;
    private const int FollowFailedEvent = 479;
    private const int StoreDirectoryChangedEvent = 496;
    private const int StoreDirectoryStillChangedEvent = 497;
    private const int OlderAnnouncementEvent = 489;
    private const int OlderAnnouncementAgainEvent = 498;
    private const int CorruptDownloadEvent = 462;
    private const int NewerVersionsWithdrawnEvent = 294;

    private readonly string root = Directory.CreateDirectory(
        Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"))).FullName;

    private readonly ModelStore source;

    public SubscriberRecordTests()
    {
        source = new ModelStore(Path.Combine(root, "learner"));
        SaveVersion(seed: 6);
    }

    public void Dispose() => Directory.Delete(root, recursive: true);

    // Handling a record that throws (here the logger, on the record's first log entry) would throw again when the record
    // is read again. The record is logged once with its offset and skipped, and the same announcement after it is applied.
    [Fact(Timeout = 90_000)]
    public async Task FailingRecordIsSkippedOnce()
    {
        (WebApplication store, string storeUrl) = await StoreServer.StartAsync(source);
        await using WebApplication storeScope = store;
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, 1);
        Announce(broker.BootstrapServers, storeUrl);
        Announce(broker.BootstrapServers, storeUrl);
        var logger = new RecordingLogger { ThrowOnFirst = HistoricalAnnouncementEvent };
        using var live = new LiveModel();
        using ModelVersionSubscriber subscriber = CreateSubscriber(broker.BootstrapServers, live, logger, new DistributionOptions());

        await subscriber.StartAsync(CancellationToken.None);
        bool served = await WaitUntilAsync(() => live.CurrentVersion == 1, TimeSpan.FromSeconds(30));
        await subscriber.StopAsync(CancellationToken.None);

        served.ShouldBeTrue("the announcement after the failing record was not applied within 30 s");
        LogRecord[] skipped = logger.WithEvent(RecordSkippedEvent);
        skipped.Length.ShouldBe(1);
        skipped[0].Message.ShouldContain(new TopicPartitionOffset(Topic, 0, 0).ToString());
        skipped[0].Exception.ShouldBeOfType<InvalidOperationException>();
        logger.WithEvent(ConsumeFailedEvent).ShouldBeEmpty();
    }

    // A null weightsSha256 passes JSON decoding into a property the compiler takes for non-null. The record is an invalid
    // announcement (a warning), not an unexpected error.
    [Fact(Timeout = 90_000)]
    public async Task NullHashIsInvalidAnnouncement()
    {
        (WebApplication store, string storeUrl) = await StoreServer.StartAsync(source);
        await using WebApplication storeScope = store;
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, 1);
        await ProduceRawAsync(broker.BootstrapServers, RunningServer.Spec.Name,
            $"{{\"modelName\":\"{RunningServer.Spec.Name}\",\"version\":1,\"weightsSha256\":null}}");
        Announce(broker.BootstrapServers, storeUrl);
        var logger = new RecordingLogger();
        using var live = new LiveModel();
        using ModelVersionSubscriber subscriber = CreateSubscriber(broker.BootstrapServers, live, logger, new DistributionOptions());

        await subscriber.StartAsync(CancellationToken.None);
        bool served = await WaitUntilAsync(() => live.CurrentVersion == 1, TimeSpan.FromSeconds(30));
        await subscriber.StopAsync(CancellationToken.None);

        served.ShouldBeTrue("the valid announcement after the invalid record was not applied within 30 s");
        logger.WithEvent(InvalidAnnouncementEvent).ShouldHaveSingleItem().Message.ShouldContain("weightsSha256 is missing");
        logger.WithEvent(RecordSkippedEvent).ShouldBeEmpty();
    }

    // A store that returns 503 to its first requests (a proxy in front of a learner that restarts) fails the first
    // downloads. The subscriber keeps the one announcement it read and downloads the version once the store works.
    [Fact(Timeout = 90_000)]
    public async Task UnavailableStoreIsRetried()
    {
        const int FailedRequests = 3;
        int requests = 0;
        await using WebApplication store = await StartStoreAsync(async context =>
        {
            if (Interlocked.Increment(ref requests) <= FailedRequests)
            {
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                return;
            }

            string file = (string)context.Request.RouteValues["file"]!;
            await context.Response.SendFileAsync(Path.Combine(source.VersionDirectory(1), file), context.RequestAborted);
        });
        var logger = new RecordingLogger();

        bool served = await ServeWithQuickRetriesAsync(AddressOf(store), logger);

        served.ShouldBeTrue("the version was not downloaded within 30 s of the store's recovery");
        LogRecord[] failures = logger.WithEvent(DownloadFailedEvent);
        failures.Length.ShouldBe(FailedRequests);
        failures[^1].Message.ShouldContain($"(attempt {FailedRequests})");
        failures[^1].Message.ShouldContain("503");
    }

    // A store or network that cuts the weights file mid-transfer is a failed download from the store, like a 503. It is
    // not a failure on this server, which 474 with a stack trace would report and send an operator to the replica's disk.
    [Fact(Timeout = 90_000)]
    public async Task CutTransferIsStoreFailure()
    {
        int cuts = 0;
        await using WebApplication store = await StartStoreAsync(async context =>
        {
            string file = (string)context.Request.RouteValues["file"]!;
            byte[] content = await File.ReadAllBytesAsync(Path.Combine(source.VersionDirectory(1), file));
            if (file == ModelStore.WeightsFileName && Interlocked.Increment(ref cuts) == 1)
            {
                context.Response.ContentLength = content.Length;
                await context.Response.Body.WriteAsync(content.AsMemory(0, content.Length / 2), context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                // The replica has read the headers and part of the body by the time the connection drops.
                await Task.Delay(TimeSpan.FromMilliseconds(300), context.RequestAborted);
                context.Abort();
                return;
            }

            await context.Response.Body.WriteAsync(content, context.RequestAborted);
        });
        var logger = new RecordingLogger();

        bool served = await ServeWithQuickRetriesAsync(AddressOf(store), logger);

        served.ShouldBeTrue("the version was not downloaded after the cut transfer");
        logger.WithEvent(DownloadFailedEvent).ShouldHaveSingleItem().Message.ShouldContain("(attempt 1)");
        logger.WithEvent(LocalDownloadFailureEvent).ShouldBeEmpty();
    }

    // The subscriber passes Distribution:MinDownloadBytesPerSecond to its downloads, and a store that trickles below it
    // is reported as a failed download with the setting's name, not as an unexpected error of the follow loop.
    [Fact(Timeout = 90_000)]
    public async Task TrickleLogsMinimumRateFailure()
    {
        await using WebApplication store = await StartStoreAsync(async context =>
        {
            string file = (string)context.Request.RouteValues["file"]!;
            byte[] content = await File.ReadAllBytesAsync(Path.Combine(source.VersionDirectory(1), file));
            if (file != ModelStore.WeightsFileName)
            {
                await context.Response.Body.WriteAsync(content, context.RequestAborted);
                return;
            }

            context.Response.ContentLength = content.Length;
            try
            {
                for (int offset = 0; offset < content.Length; offset++)
                {
                    await context.Response.Body.WriteAsync(content.AsMemory(offset, 1), context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                    await Task.Delay(TimeSpan.FromMilliseconds(100), context.RequestAborted);
                }
            }
            catch (OperationCanceledException)
            {
                // The replica gave up and closed the connection.
            }
        });
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, 1);
        Announce(broker.BootstrapServers, AddressOf(store));
        var logger = new RecordingLogger();
        using var live = new LiveModel();
        // The stall timeout is 30 times the store's interval, so that a store starved of CPU still fails on the rate.
        var options = new DistributionOptions { DownloadTimeout = TimeSpan.FromSeconds(3), MinDownloadBytesPerSecond = 100 };
        using ModelVersionSubscriber subscriber = CreateSubscriber(broker.BootstrapServers, live, logger, options);

        await subscriber.StartAsync(CancellationToken.None);
        bool failed = await WaitUntilAsync(() => logger.WithEvent(DownloadFailedEvent).Length > 0, TimeSpan.FromSeconds(30));
        await subscriber.StopAsync(CancellationToken.None);

        failed.ShouldBeTrue("no download failure was logged within 30 s of a store that sends 10 bytes/s");
        logger.WithEvent(DownloadFailedEvent)[0].Message.ShouldContain("below Distribution:MinDownloadBytesPerSecond (100 bytes/s)");
        logger.WithEvent(FollowFailedEvent).ShouldBeEmpty();
        live.CurrentVersion.ShouldBeNull();
    }

    // The replica's store directory is removed while version 1 is live. The download of version 2 fails on every attempt
    // without creating the directory again, the error is logged once, and version 1 keeps serving.
    [Fact(Timeout = 90_000)]
    public async Task RemovedStoreIsLoggedOnce()
    {
        (WebApplication store, string storeUrl) = await StoreServer.StartAsync(source);
        await using WebApplication storeScope = store;
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, 1);
        Announce(broker.BootstrapServers, storeUrl);
        var logger = new RecordingLogger();
        using var live = new LiveModel();
        var options = new DistributionOptions
        {
            RetryDelay = TimeSpan.FromMilliseconds(100),
            MaxRetryDelay = TimeSpan.FromMilliseconds(200),
        };
        using ModelVersionSubscriber subscriber = CreateSubscriber(broker.BootstrapServers, live, logger, options);
        string replica = Path.Combine(root, "replica");

        await subscriber.StartAsync(CancellationToken.None);
        bool served = await WaitUntilAsync(() => live.CurrentVersion == 1, TimeSpan.FromSeconds(30));
        Directory.Move(replica, replica + "-moved");
        SaveVersion(seed: 7);
        Announce(broker.BootstrapServers, storeUrl, version: 2);
        bool retried = await WaitUntilAsync(() => logger.WithEvent(StoreDirectoryStillChangedEvent).Length >= 2, TimeSpan.FromSeconds(30));
        await subscriber.StopAsync(CancellationToken.None);

        served.ShouldBeTrue("version 1 was not served within 30 s");
        retried.ShouldBeTrue("the download of version 2 was not attempted three times within 30 s");
        LogRecord changed = logger.WithEvent(StoreDirectoryChangedEvent).ShouldHaveSingleItem();
        changed.Message.ShouldContain(replica);
        changed.Exception.ShouldBeOfType<StoreDirectoryChangedException>();
        logger.WithEvent(LocalDownloadFailureEvent).ShouldBeEmpty();
        logger.WithEvent(FollowFailedEvent).ShouldBeEmpty();
        Directory.Exists(replica).ShouldBeFalse("a download must not create a removed store directory again");
        live.CurrentVersion.ShouldBe(1);
    }

    // A learner restarted on an empty store announces version 1 again, from another store, after version 2 of the
    // previous one. The replica stays on version 2 and logs a warning with both versions and the new store's URL once,
    // and the same announcement again at Debug.
    [Fact(Timeout = 90_000)]
    public async Task OlderVersionIsReportedOnce()
    {
        SaveVersion(seed: 7);
        var restarted = new ModelStore(Path.Combine(root, "restarted-learner"));
        SaveVersion(seed: 8, restarted);
        (WebApplication store, string storeUrl) = await StoreServer.StartAsync(source);
        await using WebApplication storeScope = store;
        (WebApplication newStore, string newStoreUrl) = await StoreServer.StartAsync(restarted);
        await using WebApplication newStoreScope = newStore;
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, 1);
        Announce(broker.BootstrapServers, storeUrl, version: 2);
        Announce(broker.BootstrapServers, newStoreUrl, version: 1, restarted);
        Announce(broker.BootstrapServers, newStoreUrl, version: 1, restarted);
        var logger = new RecordingLogger();
        using var live = new LiveModel();
        using ModelVersionSubscriber subscriber = CreateSubscriber(broker.BootstrapServers, live, logger, new DistributionOptions());

        await subscriber.StartAsync(CancellationToken.None);
        bool read = await WaitUntilAsync(
            () => live.CurrentVersion == 2 && logger.WithEvent(OlderAnnouncementAgainEvent).Length > 0, TimeSpan.FromSeconds(30));
        await subscriber.StopAsync(CancellationToken.None);

        read.ShouldBeTrue("version 2 was not served, or the second announcement of version 1 not read, within 30 s");
        string warning = logger.WithEvent(OlderAnnouncementEvent).ShouldHaveSingleItem().Message;
        warning.ShouldContain("Ignoring version 1 ");
        warning.ShouldContain($"'{newStoreUrl}'");
        warning.ShouldContain("version 2 from store");
        warning.ShouldContain("--version-topic");
        logger.WithEvent(OlderAnnouncementAgainEvent).ShouldHaveSingleItem();
        live.CurrentVersion.ShouldBe(2);
    }

    // A learner announced version 2, then restarted after version 2's weights were truncated in its store, and announced
    // version 1 with the store's highest saved number, 2. A replica that starts now serves version 1, and never tries
    // to download the corrupt version 2.
    [Fact(Timeout = 60_000)]
    public async Task NewReplicaServesVersionBelowWithdrawnOne()
    {
        SaveVersion(seed: 7);
        (WebApplication store, string storeUrl) = await StoreServer.StartAsync(source);
        await using WebApplication storeScope = store;
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, 1);
        Announce(broker.BootstrapServers, storeUrl, version: 2);
        TruncateWeights(version: 2);
        Announce(broker.BootstrapServers, storeUrl, version: 1, highestSavedVersion: 2);
        var logger = new RecordingLogger();
        using var live = new LiveModel();
        using ModelVersionSubscriber subscriber = CreateSubscriber(broker.BootstrapServers, live, logger, new DistributionOptions());

        await subscriber.StartAsync(CancellationToken.None);
        bool served = await WaitUntilAsync(() => live.CurrentVersion == 1, TimeSpan.FromSeconds(20));
        await subscriber.StopAsync(CancellationToken.None);

        served.ShouldBeTrue($"version 1 was not served within 20 s; the live version is {live.CurrentVersion?.ToString() ?? "none"}");
        string warning = logger.WithEvent(NewerVersionsWithdrawnEvent).ShouldHaveSingleItem().Message;
        warning.ShouldContain("replaces version 2");
        warning.ShouldContain($"'{storeUrl}'");
        logger.WithEvent(OlderAnnouncementEvent).ShouldBeEmpty();
        logger.WithEvent(CorruptDownloadEvent).ShouldBeEmpty();
    }

    // A replica that serves version 2 goes back to version 1 once the learner withdraws version 2 (its weights are
    // corrupt in the learner's store), keeps its own copy of version 2, and follows the next version, 3.
    [Fact(Timeout = 60_000)]
    public async Task LiveReplicaLeavesWithdrawnVersion()
    {
        SaveVersion(seed: 7);
        (WebApplication store, string storeUrl) = await StoreServer.StartAsync(source);
        await using WebApplication storeScope = store;
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, 1);
        Announce(broker.BootstrapServers, storeUrl, version: 2);
        var logger = new RecordingLogger();
        using var live = new LiveModel();
        using ModelVersionSubscriber subscriber = CreateSubscriber(broker.BootstrapServers, live, logger, new DistributionOptions());
        await subscriber.StartAsync(CancellationToken.None);
        bool servedSecond = await WaitUntilAsync(() => live.CurrentVersion == 2, TimeSpan.FromSeconds(20));

        TruncateWeights(version: 2);
        Announce(broker.BootstrapServers, storeUrl, version: 1, highestSavedVersion: 2);
        bool servedFirst = servedSecond && await WaitUntilAsync(() => live.CurrentVersion == 1, TimeSpan.FromSeconds(10));
        SaveVersion(seed: 8);
        Announce(broker.BootstrapServers, storeUrl, version: 3);
        bool servedThird = servedFirst && await WaitUntilAsync(() => live.CurrentVersion == 3, TimeSpan.FromSeconds(10));
        await subscriber.StopAsync(CancellationToken.None);

        servedSecond.ShouldBeTrue("version 2 was not served within 20 s");
        servedFirst.ShouldBeTrue($"version 1 did not replace the withdrawn version 2 within 10 s; the live version is {live.CurrentVersion}");
        servedThird.ShouldBeTrue($"version 3 was not served within 10 s; the live version is {live.CurrentVersion}");
        logger.WithEvent(NewerVersionsWithdrawnEvent).ShouldHaveSingleItem();
        new ModelStore(Path.Combine(root, "replica")).ListVersionNumbers().ShouldContain(2);
    }

    // Announces version 1 from storeUrl and runs a subscriber that retries failed downloads after 100 to 200 ms, until it
    // serves the version or 30 s pass. Returns whether it served the version.
    private async Task<bool> ServeWithQuickRetriesAsync(string storeUrl, RecordingLogger logger)
    {
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, 1);
        Announce(broker.BootstrapServers, storeUrl);
        using var live = new LiveModel();
        var options = new DistributionOptions
        {
            RetryDelay = TimeSpan.FromMilliseconds(100),
            MaxRetryDelay = TimeSpan.FromMilliseconds(200),
        };
        using ModelVersionSubscriber subscriber = CreateSubscriber(broker.BootstrapServers, live, logger, options);

        await subscriber.StartAsync(CancellationToken.None);
        bool served = await WaitUntilAsync(() => live.CurrentVersion == 1, TimeSpan.FromSeconds(30));
        await subscriber.StopAsync(CancellationToken.None);
        return served;
    }

    private ModelVersionSubscriber CreateSubscriber(
        string bootstrapServers, LiveModel live, RecordingLogger logger, DistributionOptions options)
    {
        options.BootstrapServers = bootstrapServers;
        options.Topic = Topic;
        var serverOptions = Options.Create(new ServerOptions
        {
            ModelName = RunningServer.Spec.Name,
            StoreDirectory = Path.Combine(root, "replica"),
            Device = "cpu",
        });
        var swapper = new ModelSwapper(live, serverOptions, NullLogger<ModelSwapper>.Instance);
        return new ModelVersionSubscriber(Options.Create(options), serverOptions, swapper, live, KafkaClientProperties.None, logger);
    }

    // Saves the next version in into, or in the learner's store when into is null, with weights drawn from seed.
    private void SaveVersion(int seed, ModelStore? into = null)
    {
        torch.manual_seed(seed);
        using nn.Module<Tensor, Tensor> module = Model.ModelFactory.Create(RunningServer.Spec);
        (into ?? source).Save(RunningServer.Spec, module, new ModelManifest());
    }

    private void Announce(string bootstrapServers, string storeUrl, long version = 1, ModelStore? from = null, long highestSavedVersion = 0)
    {
        using var publisher = new ModelVersionPublisher(
            bootstrapServers, new DistributionOptions { StoreUrl = storeUrl, Topic = Topic }, NullLogger<ModelVersionPublisher>.Instance);
        (from ?? source).TryLoad(version, out ModelVersion? saved).ShouldBeTrue();
        publisher.Publish(saved!, highestSavedVersion);
        publisher.Flush(TimeSpan.FromSeconds(10)).ShouldBe(0);
    }

    // Cuts the weights of a version in the learner's store to half their length, as a failed disk or an operator's
    // truncate would.
    private void TruncateWeights(long version)
    {
        string weights = Path.Combine(source.VersionDirectory(version), ModelStore.WeightsFileName);
        using var stream = new FileStream(weights, FileMode.Open, FileAccess.Write);
        stream.SetLength(stream.Length / 2);
    }

    private static async Task ProduceRawAsync(string bootstrapServers, string key, string value)
    {
        using IProducer<string, byte[]> producer = new ProducerBuilder<string, byte[]>(
            new ProducerConfig { BootstrapServers = bootstrapServers }).Build();
        await producer.ProduceAsync(Topic, new Message<string, byte[]> { Key = key, Value = Encoding.UTF8.GetBytes(value) });
    }

    // Starts a store on 127.0.0.1 whose file requests run handle, and returns once it listens.
    private static async Task<WebApplication> StartStoreAsync(RequestDelegate handle)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        WebApplication app = builder.Build();
        app.MapGet("/store/v1/versions/{version}/{file}", handle);
        await app.StartAsync();
        return app;
    }

    private static string AddressOf(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

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

    private sealed record LogRecord(int EventId, string Message, Exception? Exception);

    /// <summary>Logger that keeps every entry with its event id, formatted message and exception.</summary>
    private sealed class RecordingLogger : ILogger<ModelVersionSubscriber>
    {
        private readonly List<LogRecord> records = [];
        private bool thrown;

        /// <summary>Event id whose first entry throws instead of being kept, as a failing log sink would; 0 for none.</summary>
        public int ThrowOnFirst { get; init; }

        public LogRecord[] WithEvent(int eventId)
        {
            lock (records)
            {
                return records.Where(record => record.EventId == eventId).ToArray();
            }
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(
            LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (records)
            {
                if (eventId.Id == ThrowOnFirst && !thrown)
                {
                    thrown = true;
                    throw new InvalidOperationException($"The log sink failed on event {eventId.Id}.");
                }

                records.Add(new LogRecord(eventId.Id, formatter(state, exception), exception));
            }
        }
    }
}
