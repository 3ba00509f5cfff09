using System.Diagnostics;
using ContinualServe.Learner;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
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
/// Stops of a learner host whose pin watch never ends. Once the learner has started, the store's pin file becomes a
/// named pipe without a writer, so the watch's next read blocks in open(2) as a read from a hung NFS server would.
/// </summary>
public sealed class LearnerHostedServiceStopTests : IDisposable
{
    private const string Topic = "hosted-stop-examples";
    private const string VersionTopic = "hosted-stop-versions";
    private const int PinWatchAbandonedEventId = 266;

    // The watch checks the pin every 500 ms, so a check starts and ends well within this bound.
    private static readonly TimeSpan BlockTimeout = TimeSpan.FromSeconds(10);

    private readonly string storeDirectory = Directory.CreateTempSubdirectory("continualserve-hosted-stop-").FullName;

    public void Dispose() => Directory.Delete(storeDirectory, recursive: true);

    [Fact(Timeout = 120_000)]
    public Task StopEndsAtShutdownToken() =>
        Task.Run(() => StopWithHungPinWatchAsync(TimeSpan.FromSeconds(1), expectedMaxSeconds: 8));

    // Without a shutdown deadline (CancellationToken.None) the wait ends after the service's own 10 s bound.
    [Fact(Timeout = 120_000)]
    public Task StopEndsWithoutShutdownToken() =>
        Task.Run(() => StopWithHungPinWatchAsync(null, expectedMaxSeconds: 18));

    private async Task StopWithHungPinWatchAsync(TimeSpan? shutdownAfter, double expectedMaxSeconds)
    {
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, partitionCount: 1);
        broker.CreateTopic(VersionTopic, partitionCount: 1);
        string pinFile = Path.Combine(storeDirectory, StoreControlFiles.PinnedVersionFileName);
        var options = new LearnerOptions
        {
            BootstrapServers = broker.BootstrapServers,
            Topic = Topic,
            GroupId = "hosted-stop",
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
        try
        {
            // The pipe is made only now because saving the initial version reads the pin too, on the starting thread.
            await service.StartedAsync(CancellationToken.None);

            // The pipe is made just after a check ends, so no check is under way while it replaces the pin file. The next
            // check starts at the next tick of the 500 ms poll timer, opens the pipe for reading and blocks, because the
            // pipe has no writer. Two checks are awaited, because the first one compiles the watch's code and can run
            // past a tick, and the check after it then starts at once.
            long checksEnded = service.PinChecksEnded;
            (await WaitUntilAsync(() => service.PinChecksEnded >= checksEnded + 2, BlockTimeout))
                .ShouldBeTrue("the pin watch did not end two checks");
            CreateNamedPipe(pinFile);
            long checksBeforePipe = service.PinChecksStarted;
            (await WaitUntilAsync(() => service.PinChecksStarted > checksBeforePipe, BlockTimeout))
                .ShouldBeTrue("the pin watch started no check after the pin file became a named pipe");
            using var shutdown = shutdownAfter is null ? new CancellationTokenSource() : new CancellationTokenSource(shutdownAfter.Value);
            var clock = Stopwatch.StartNew();

            // Without a bound the stop never returns, so the test gives it a generous limit of its own.
            await service.StopAsync(shutdownAfter is null ? CancellationToken.None : shutdown.Token).WaitAsync(TimeSpan.FromSeconds(40));

            clock.Elapsed.TotalSeconds.ShouldBeLessThan(expectedMaxSeconds);
            logs.Entries.ShouldContain(entry => entry.EventId == PinWatchAbandonedEventId);
            learner.Status.IsRunning.ShouldBeFalse();
        }
        finally
        {
            await ReleaseBlockedReaderAsync(pinFile);
        }
    }

    private static async Task<bool> WaitUntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20));
        }

        return true;
    }

    private static void CreateNamedPipe(string path)
    {
        using Process mkfifo = Process.Start("mkfifo", [path]);
        mkfifo.WaitForExit(10_000).ShouldBeTrue("mkfifo did not exit");
        mkfifo.ExitCode.ShouldBe(0, "mkfifo failed");
    }

    // Opening the pipe for writing lets the blocked open for reading return, and the watch then reads an empty file.
    private static async Task ReleaseBlockedReaderAsync(string pinFile)
    {
        Task release = Task.Run(() =>
        {
            using var writer = new FileStream(pinFile, FileMode.Open, FileAccess.Write);
        });
        await Task.WhenAny(release, Task.Delay(TimeSpan.FromSeconds(5)));
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
