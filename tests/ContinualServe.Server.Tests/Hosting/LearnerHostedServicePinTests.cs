using Confluent.Kafka;
using ContinualServe.Learner;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Server.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Hosting;

/// <summary>
/// The pin watch of a learner host whose pin check or serving step throws an error that nothing expects. Every replica
/// logs each pin record on the version topic, so the pin must be published once while only the serving step is retried.
/// </summary>
public sealed class LearnerHostedServicePinTests : IDisposable
{
    private const string Topic = "hosted-pin-examples";
    private const string VersionTopic = "hosted-pin-versions";
    private const int PinWatchFailedEventId = 433;
    private const int PinServeFailedEventId = 278;
    private const int FailedServes = 2;
    private const int FailedChecks = 2;

    private readonly string storeDirectory = Directory.CreateTempSubdirectory("continualserve-hosted-pin-").FullName;

    public void Dispose() => Directory.Delete(storeDirectory, recursive: true);

    [Fact(Timeout = 120_000)]
    public Task FailedServePublishesPinOnce() => Task.Run(async () =>
    {
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, partitionCount: 1);
        broker.CreateTopic(VersionTopic, partitionCount: 1);
        var options = new LearnerOptions
        {
            BootstrapServers = broker.BootstrapServers,
            Topic = Topic,
            GroupId = "hosted-pin",
            StoreDirectory = storeDirectory,
            SessionTimeout = TimeSpan.FromSeconds(3),
            Device = "cpu",
        };
        var distribution = new DistributionOptions { BootstrapServers = broker.BootstrapServers, Topic = VersionTopic };
        using var learner = new ContinualLearner(options, NullLoggerFactory.Instance);
        using var publisher = new ModelVersionPublisher(broker.BootstrapServers, distribution, NullLogger<ModelVersionPublisher>.Instance);
        var logs = new LogRecorder<LearnerHostedService>();
        using ServiceProvider services = new ServiceCollection().BuildServiceProvider();
        using var service = new LearnerHostedService(learner, publisher, Options.Create(distribution), services, new IdleLifetime(), logs);

        // The first serving steps throw, and the watch retries after 1 s and then 2 s of backoff.
        int serves = 0;
        service.BeforeServeStorePin = () =>
        {
            if (Interlocked.Increment(ref serves) <= FailedServes)
            {
                throw new InvalidOperationException("injected serving failure");
            }
        };
        await service.StartedAsync(CancellationToken.None);
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (Volatile.Read(ref serves) <= FailedServes)
        {
            DateTime.UtcNow.ShouldBeLessThan(deadline, "the pin watch did not retry the serving step");
            await Task.Delay(100);
        }

        // A few more checks of the unchanged pin must publish nothing, and a changed pin is then published once.
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Volatile.Read(ref serves).ShouldBe(FailedServes + 1, "a successful serving step is not repeated");
        CountPinRecords(broker.BootstrapServers).ShouldBe(1);
        StoreControlFiles.WritePinnedVersion(storeDirectory, 1);
        while (Volatile.Read(ref serves) <= FailedServes + 1)
        {
            DateTime.UtcNow.ShouldBeLessThan(deadline, "the pin watch did not serve the changed pin");
            await Task.Delay(100);
        }

        await service.StopAsync(CancellationToken.None);

        logs.Entries.Count(entry => entry.EventId == PinServeFailedEventId).ShouldBe(FailedServes);
        logs.Entries.ShouldNotContain(entry => entry.EventId == PinWatchFailedEventId);
        CountPinRecords(broker.BootstrapServers).ShouldBe(2);
    });

    // A check that fails before it reads the pin announces nothing. The watch logs each failure with its backoff, the
    // learner and the version it published keep running, and the first check after the backoff announces the pin.
    [Fact(Timeout = 120_000)]
    public Task FailedCheckIsRetried() => Task.Run(async () =>
    {
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, partitionCount: 1);
        broker.CreateTopic(VersionTopic, partitionCount: 1);
        var options = new LearnerOptions
        {
            BootstrapServers = broker.BootstrapServers,
            Topic = Topic,
            GroupId = "hosted-pin-check",
            StoreDirectory = storeDirectory,
            SessionTimeout = TimeSpan.FromSeconds(3),
            Device = "cpu",
        };
        var distribution = new DistributionOptions { BootstrapServers = broker.BootstrapServers, Topic = VersionTopic };
        using var learner = new ContinualLearner(options, NullLoggerFactory.Instance);
        using var publisher = new ModelVersionPublisher(broker.BootstrapServers, distribution, NullLogger<ModelVersionPublisher>.Instance);
        var logs = new LogRecorder<LearnerHostedService>();

        // The all role's server part: the service swaps each published version and the store's pin into it.
        using var live = new LiveModel();
        var serverOptions = new ServerOptions { StoreDirectory = storeDirectory, Device = "cpu", IntraOpThreads = 0 };
        var swapper = new ModelSwapper(live, Options.Create(serverOptions), NullLogger<ModelSwapper>.Instance);
        using ServiceProvider services = new ServiceCollection().AddSingleton(swapper).BuildServiceProvider();
        using var service = new LearnerHostedService(learner, publisher, Options.Create(distribution), services, new IdleLifetime(), logs);

        // Each check records the version that serves when it starts, so the failed checks show what served meanwhile.
        var servedAtCheck = new System.Collections.Concurrent.ConcurrentQueue<long?>();
        service.BeforePinCheck = () =>
        {
            servedAtCheck.Enqueue(live.CurrentVersion);
            if (servedAtCheck.Count <= FailedChecks)
            {
                throw new InvalidOperationException("injected pin check failure");
            }
        };
        await service.StartedAsync(CancellationToken.None);
        long? firstVersion = live.CurrentVersion;
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (servedAtCheck.Count <= FailedChecks + 1 || service.PinChecksEnded <= FailedChecks + 1)
        {
            DateTime.UtcNow.ShouldBeLessThan(deadline, "the pin watch did not check the pin again after the failed checks");
            await Task.Delay(100);
        }

        bool learnerRan = learner.Status.IsRunning;

        // The stop flushes the publisher, so the topic then holds every pin record that a check queued.
        await service.StopAsync(CancellationToken.None);
        int pinRecords = CountPinRecords(broker.BootstrapServers);

        firstVersion.ShouldNotBeNull("the service did not serve the learner's first version");
        servedAtCheck.Take(FailedChecks + 1).ShouldAllBe(version => version == firstVersion, "versions served at the failed checks and the first check after them");
        learnerRan.ShouldBeTrue("the learner stopped after the failed pin checks");
        service.LearnerFailure.ShouldBeNull();
        logs.Entries.Count(entry => entry.EventId == PinWatchFailedEventId).ShouldBe(FailedChecks);
        logs.Entries.ShouldNotContain(entry => entry.EventId == PinServeFailedEventId);
        pinRecords.ShouldBe(1, "pin records on the version topic after the first check that succeeded");
    });

    // Reads the version topic from its beginning to its end without joining a group.
    private static int CountPinRecords(string bootstrapServers)
    {
        ConsumerConfig config = KafkaDefaults.CreateConsumerConfig(bootstrapServers, "hosted-pin-reader");
        config.EnablePartitionEof = true;
        using IConsumer<string, Ignore> reader = new ConsumerBuilder<string, Ignore>(config).Build();
        reader.Assign(new TopicPartitionOffset(VersionTopic, 0, Offset.Beginning));
        int pins = 0;
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            DateTime.UtcNow.ShouldBeLessThan(deadline, "the version topic was not read to its end");
            ConsumeResult<string, Ignore>? result = reader.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF)
            {
                return pins;
            }

            if (ModelPinAnnouncement.IsPinKey(result.Message.Key))
            {
                pins++;
            }
        }
    }

    private sealed class IdleLifetime : IHostApplicationLifetime
    {
        public CancellationToken ApplicationStarted => CancellationToken.None;

        public CancellationToken ApplicationStopping => CancellationToken.None;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void StopApplication()
        {
        }
    }
}
