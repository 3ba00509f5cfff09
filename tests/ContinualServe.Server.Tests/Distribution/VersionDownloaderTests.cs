using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Inference;
using ContinualServe.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>A replica's download of an announced version from a learner's store served over HTTP on 127.0.0.1.</summary>
public sealed class VersionDownloaderTests : IAsyncLifetime, IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
    private readonly HttpClient http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private WebApplication? learner;
    private ModelStore source = null!;
    private ModelStore local = null!;
    private string storeUrl = "";

    public async Task InitializeAsync()
    {
        source = new ModelStore(Path.Combine(root, "learner"));
        local = new ModelStore(Path.Combine(root, "replica"));
        torch.manual_seed(3);
        using nn.Module<Tensor, Tensor> module = Model.ModelFactory.Create(RunningServer.Spec);
        source.Save(RunningServer.Spec, module, new ModelManifest());

        (learner, storeUrl) = await StoreServer.StartAsync(source);
    }

    public void Dispose() => http.Dispose();

    public async Task DisposeAsync()
    {
        if (learner is not null)
        {
            await learner.DisposeAsync();
        }

        Directory.Delete(root, recursive: true);
    }

    [Fact]
    public async Task AnnouncedVersionIsInstalled()
    {
        ModelVersionAnnouncement announcement = Announce(1);

        ModelVersion installed = await new VersionDownloader(http, local, null).InstallAsync(announcement, CancellationToken.None);

        installed.Number.ShouldBe(1);
        installed.Manifest.WeightsSha256.ShouldBe(announcement.WeightsSha256);
        local.ListVersionNumbers().ShouldBe([1L]);
        Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
    }

    [Fact]
    public async Task RemovedStoreIsNotCreatedAgain()
    {
        Directory.Delete(local.RootDirectory, recursive: true);

        var exception = await Should.ThrowAsync<StoreDirectoryChangedException>(
            new VersionDownloader(http, local, null).InstallAsync(Announce(1), CancellationToken.None));

        exception.Directory.ShouldBe(local.RootDirectory);
        exception.Message.ShouldContain("no longer exists");
        Directory.Exists(local.RootDirectory).ShouldBeFalse("a download must not create a removed store directory again");
    }

    // The store directory is checked before the download, so no weights are requested for a directory that the
    // install would reject.
    [Fact]
    public async Task ReplacedStoreGetsNoDownload()
    {
        var requests = new StoreServer.SlowWeights(TimeSpan.Zero);
        var (countingLearner, countingUrl) = await StoreServer.StartSlowAsync(source, requests);
        await using WebApplication countingScope = countingLearner;
        source.TryLoad(1, out ModelVersion? version).ShouldBeTrue();
        Directory.Move(local.RootDirectory, local.RootDirectory + "-moved");
        Directory.CreateDirectory(local.RootDirectory);

        var exception = await Should.ThrowAsync<StoreDirectoryChangedException>(
            new VersionDownloader(http, local, null).InstallAsync(ModelVersionAnnouncement.From(version!, countingUrl), CancellationToken.None));

        exception.Message.ShouldContain("replaced by another directory");
        requests.Requests.Reader.TryRead(out _).ShouldBeFalse("weights were requested for a replaced store directory");
        Directory.GetFileSystemEntries(local.RootDirectory).ShouldBeEmpty();
    }

    [Fact]
    public async Task TamperedWeightsAreRejected()
    {
        ModelVersionAnnouncement announcement = Announce(1);
        string weights = Path.Combine(source.VersionDirectory(1), ModelStore.WeightsFileName);
        byte[] bytes = await File.ReadAllBytesAsync(weights);
        bytes[bytes.Length / 2] ^= 0x01;
        await File.WriteAllBytesAsync(weights, bytes);

        InvalidDataException exception = await Should.ThrowAsync<InvalidDataException>(
            new VersionDownloader(http, local, null).InstallAsync(announcement, CancellationToken.None));

        exception.Message.ShouldContain("SHA-256");
        local.ListVersionNumbers().ShouldBeEmpty();
        Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
    }

    [Fact]
    public async Task AnnouncementChecksumMismatchIsRejected()
    {
        ModelVersionAnnouncement announcement = Announce(1) with { WeightsSha256 = new string('0', 64) };

        await Should.ThrowAsync<InvalidDataException>(
            new VersionDownloader(http, local, null).InstallAsync(announcement, CancellationToken.None));

        local.ListVersionNumbers().ShouldBeEmpty();
    }

    [Fact]
    public async Task MissingVersionFailsWithHttpError()
    {
        ModelVersionAnnouncement announcement = Announce(1) with { Version = 9 };

        HttpRequestException exception = await Should.ThrowAsync<HttpRequestException>(
            new VersionDownloader(http, local, null).InstallAsync(announcement, CancellationToken.None));

        exception.StatusCode.ShouldBe(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task ConfiguredStoreUrlOverridesAnnouncedOne()
    {
        ModelVersionAnnouncement announcement = Announce(1) with { StoreUrl = "http://127.0.0.1:1" };

        ModelVersion installed = await new VersionDownloader(http, local, storeUrl).InstallAsync(announcement, CancellationToken.None);

        installed.Number.ShouldBe(1);
    }

    [Fact]
    public async Task WeightsLargerThanAnnouncedAreRejected()
    {
        ModelVersionAnnouncement announcement = Announce(1);
        announcement = announcement with { WeightsBytes = announcement.WeightsBytes - 1 };

        InvalidDataException exception = await Should.ThrowAsync<InvalidDataException>(
            new VersionDownloader(http, local, null).InstallAsync(announcement, CancellationToken.None));

        exception.Message.ShouldContain($"more than {announcement.WeightsBytes} bytes");
        local.ListVersionNumbers().ShouldBeEmpty();
        Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
    }

    // Without a cap, a store that never ends its body fills the replica's disk until the download times out (a run
    // without the cap wrote 30 GB in 60 s). This store stops after 64 MiB, four times the metadata cap, so that a
    // regression fails without filling the disk.
    [Fact(Timeout = 60_000)]
    public async Task OversizedSpecIsCutOff()
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using WebApplication endless = builder.Build();
        endless.MapGet("/store/v1/versions/{version}/{file}", async (HttpContext context) =>
        {
            byte[] chunk = new byte[64 * 1024];
            for (int sent = 0; sent < 1024 && !context.RequestAborted.IsCancellationRequested; sent++)
            {
                await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
            }
        });
        await endless.StartAsync();
        string endlessUrl = endless.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

        InvalidDataException exception = await Should.ThrowAsync<InvalidDataException>(
            new VersionDownloader(http, local, endlessUrl).InstallAsync(Announce(1), CancellationToken.None));

        exception.Message.ShouldContain(ModelStore.SpecFileName);
        local.ListVersionNumbers().ShouldBeEmpty();
        Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
    }

    // A store that sends the headers and then stalls the body must not hold the download past the client's timeout, which
    // is Distribution:DownloadTimeout on a replica. HttpClient's own timeout ends once the headers are read.
    [Fact]
    public async Task StalledBodyTimesOut()
    {
        using var stalling = new TcpListener(IPAddress.Loopback, 0);
        stalling.Start();
        var released = new TaskCompletionSource();
        Task serving = Task.Run(async () =>
        {
            using TcpClient connection = await stalling.AcceptTcpClientAsync();
            NetworkStream stream = connection.GetStream();
            var buffer = new byte[4096];
            var request = new System.Text.StringBuilder();
            int read;
            while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal) && (read = await stream.ReadAsync(buffer)) > 0)
            {
                request.Append(System.Text.Encoding.ASCII.GetString(buffer, 0, read));
            }

            await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{\"na"));
            await released.Task;
        });
        string url = "http://127.0.0.1:" + ((IPEndPoint)stalling.LocalEndpoint).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
        try
        {
            Task<ModelVersion> install = new VersionDownloader(client, local, url).InstallAsync(Announce(1), CancellationToken.None);

            Task finished = await Task.WhenAny(install, Task.Delay(TimeSpan.FromSeconds(20)));

            finished.ShouldBe(install, "the download still waited for the stalled body after 20 s");
            install.IsCanceled.ShouldBeTrue("the download ended without the timeout's cancellation");
            string message = "";
            try
            {
                await install;
            }
            catch (TaskCanceledException exception)
            {
                message = exception.Message;
            }

            message.ShouldContain("the store sent no bytes for 00:00:01");
            Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
        }
        finally
        {
            released.SetResult();
            await serving;
        }
    }

    // Distribution:DownloadTimeout bounds the time without bytes, not the whole download, so a version that takes
    // three times the timeout to arrive, at a steady pace, is installed.
    [Fact(Timeout = 60_000)]
    public async Task SteadySlowDownloadOutlastsTimeout()
    {
        await using WebApplication trickling = await StartTricklingStoreAsync(chunks: 12, TimeSpan.FromMilliseconds(250), stallAfterwards: false);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
        var clock = Stopwatch.StartNew();

        ModelVersion installed = await new VersionDownloader(client, local, AddressOf(trickling)).InstallAsync(Announce(1), CancellationToken.None);

        clock.Elapsed.ShouldBeGreaterThan(TimeSpan.FromSeconds(2), "the store sent the weights faster than the test intends");
        installed.Number.ShouldBe(1);
        Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
    }

    // A store that sends the weights steadily for longer than the timeout and then stalls fails one timeout after its
    // last bytes, not one timeout after the download started. The timeout is eight times the store's interval, so that
    // a store starved of CPU by other tests still sends within it.
    [Fact(Timeout = 60_000)]
    public async Task StallAfterSteadyBytesTimesOut()
    {
        await using WebApplication trickling = await StartTricklingStoreAsync(chunks: 12, TimeSpan.FromMilliseconds(250), stallAfterwards: true);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var clock = Stopwatch.StartNew();

        // Shouldly reports a canceled task without its exception, so the message is caught here.
        string message = "";
        try
        {
            await new VersionDownloader(client, local, AddressOf(trickling)).InstallAsync(Announce(1), CancellationToken.None);
        }
        catch (TaskCanceledException exception)
        {
            message = exception.Message;
        }

        clock.Elapsed.ShouldBeGreaterThan(TimeSpan.FromSeconds(2.5), "the download stopped while the store still sent bytes");
        clock.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(15), "the download waited far longer than the timeout after the stall");
        message.ShouldContain("the store sent no bytes for 00:00:02");
        local.ListVersionNumbers().ShouldBeEmpty();
        Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
    }

    // A store that sends one byte every 100 ms never stalls for the 1 s timeout, so only the minimum rate, here about
    // a thirtieth of the weights per second, ends the download. Without it the weights would take minutes to arrive.
    [Fact(Timeout = 60_000)]
    public async Task TrickleBelowMinimumRateFails()
    {
        ModelVersionAnnouncement announcement = Announce(1);
        long minBytesPerSecond = announcement.WeightsBytes / 30;
        await using WebApplication trickling = await StartTricklingStoreAsync(
            chunks: (int)announcement.WeightsBytes, TimeSpan.FromMilliseconds(100), stallAfterwards: false);
        string address = AddressOf(trickling);
        // A stall timeout of 3 s, 30 times the store's interval, so that a store starved of CPU by other tests still
        // fails on the rate, not on the stall.
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        var clock = Stopwatch.StartNew();

        Task<ModelVersion> install = new VersionDownloader(client, local, address, minBytesPerSecond)
            .InstallAsync(announcement, CancellationToken.None);
        Task finished = await Task.WhenAny(install, Task.Delay(TimeSpan.FromSeconds(20)));

        finished.ShouldBe(install, "the download still ran after 20 s although the store sent about 10 bytes/s");
        TimeoutException exception = await Should.ThrowAsync<TimeoutException>(install);
        clock.Elapsed.ShouldBeGreaterThan(TimeSpan.FromSeconds(3), "the download failed before one window of 3 s ended");
        exception.Message.ShouldContain($"{ModelStore.WeightsFileName} of version 1 from {address}");
        exception.Message.ShouldContain($"below Distribution:MinDownloadBytesPerSecond ({minBytesPerSecond} bytes/s)");
        exception.Message.ShouldMatch(@"the store sent \d+ bytes in \d+\.\d s \(\d+ bytes/s\)");
        local.ListVersionNumbers().ShouldBeEmpty();
        Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
    }

    // The same minimum as above, with the weights sent in 12 chunks over 6 s, five times faster than the minimum. The
    // download spans two windows of 3 s, and each of them passes.
    [Fact(Timeout = 60_000)]
    public async Task SlowDownloadAboveMinimumRateCompletes()
    {
        ModelVersionAnnouncement announcement = Announce(1);
        await using WebApplication trickling = await StartTricklingStoreAsync(chunks: 12, TimeSpan.FromMilliseconds(500), stallAfterwards: false);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        var clock = Stopwatch.StartNew();

        ModelVersion installed = await new VersionDownloader(client, local, AddressOf(trickling), announcement.WeightsBytes / 30)
            .InstallAsync(announcement, CancellationToken.None);

        clock.Elapsed.ShouldBeGreaterThan(TimeSpan.FromSeconds(2), "the store sent the weights faster than the test intends");
        installed.Number.ShouldBe(1);
        Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
    }

    // The store sends the weights' headers 2.8 s into a timeout of 4 s, and then the body in 2 s: half of the weights per
    // second against a minimum of 0.4. Measured from the request, the first window would end 4 s in with about 65% of
    // the weights, 0.16 of them per second. Measured from the headers, the body ends within its first window.
    [Fact(Timeout = 60_000)]
    public async Task LateHeadersPassRateCheck()
    {
        ModelVersionAnnouncement announcement = Announce(1);
        await using WebApplication trickling = await StartTricklingStoreAsync(
            chunks: 20, TimeSpan.FromMilliseconds(100), stallAfterwards: false, headersDelay: TimeSpan.FromSeconds(2.8));
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(4) };
        var clock = Stopwatch.StartNew();

        ModelVersion installed = await new VersionDownloader(client, local, AddressOf(trickling), announcement.WeightsBytes * 2 / 5)
            .InstallAsync(announcement, CancellationToken.None);

        clock.Elapsed.ShouldBeGreaterThan(TimeSpan.FromSeconds(4), "the weights arrived within 4 s, before a window counted from the request ended");
        installed.Number.ShouldBe(1);
        Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
    }

    // The rate is measured from the headers on, so a store that never sends them must still fail within the timeout.
    [Fact(Timeout = 60_000)]
    public async Task MissingHeadersTimeOut()
    {
        await using WebApplication silent = await StartTricklingStoreAsync(
            chunks: 1, TimeSpan.Zero, stallAfterwards: false, headersDelay: TimeSpan.FromSeconds(30));
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
        var clock = Stopwatch.StartNew();

        Task<ModelVersion> install = new VersionDownloader(client, local, AddressOf(silent), minBytesPerSecond: 1)
            .InstallAsync(Announce(1), CancellationToken.None);
        Task finished = await Task.WhenAny(install, Task.Delay(TimeSpan.FromSeconds(20)));

        finished.ShouldBe(install, "the download still waited for headers after 20 s");
        install.IsCanceled.ShouldBeTrue("the download ended without the timeout's cancellation");
        clock.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(10), "the download waited far longer than the timeout for headers");
        local.ListVersionNumbers().ShouldBeEmpty();
        Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
    }

    // A local copy whose manifest cannot be read (here a directory in its place, which throws UnauthorizedAccessException
    // on read) is not intact, so the download replaces it instead of failing on it at every retry.
    [Fact]
    public async Task UnreadableLocalCopyIsReplaced()
    {
        ModelVersionAnnouncement announcement = Announce(1);
        var downloader = new VersionDownloader(http, local, null);
        await downloader.InstallAsync(announcement, CancellationToken.None);
        string manifest = Path.Combine(local.VersionDirectory(1), ModelStore.ManifestFileName);
        File.Delete(manifest);
        Directory.CreateDirectory(manifest);

        ModelVersion installed = await downloader.InstallAsync(announcement, CancellationToken.None);

        installed.Manifest.WeightsSha256.ShouldBe(announcement.WeightsSha256);
        File.Exists(manifest).ShouldBeTrue("the unreadable copy was not replaced");
    }

    // Replicas may share one volume. When another replica installs the version while this one downloads it, the other
    // replica's copy stays, because that replica may be loading it at that moment.
    [Fact]
    public async Task ConcurrentInstallKeepsOtherCopy()
    {
        ModelVersionAnnouncement announcement = Announce(1);
        string marker = Path.Combine(local.VersionDirectory(1), "installed-by-other-replica");
        using var interleaving = new HttpClient(new BeforeWeightsHandler(async () =>
        {
            await new VersionDownloader(http, local, null).InstallAsync(announcement, CancellationToken.None);
            await File.WriteAllTextAsync(marker, "");
        }));

        ModelVersion installed = await new VersionDownloader(interleaving, local, null).InstallAsync(announcement, CancellationToken.None);

        installed.Number.ShouldBe(1);
        File.Exists(marker).ShouldBeTrue("the copy that another replica installed during this download was replaced");
        Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
    }

    // Replicas that share one volume apply retention right after the same download, so both delete the same old
    // versions at about the same time. A version that the other replica deleted first is not a failure.
    [Fact]
    public async Task SharedRetentionToleratesOtherReplica()
    {
        const int VersionCount = 40;
        for (int round = 0; round < 10; round++)
        {
            for (long number = 1; number <= VersionCount; number++)
            {
                string directory = Directory.CreateDirectory(local.VersionDirectory(number)).FullName;
                foreach (string file in new[] { ModelStore.SpecFileName, ModelStore.ManifestFileName, ModelStore.WeightsFileName })
                {
                    await File.WriteAllBytesAsync(Path.Combine(directory, file), new byte[64]);
                }
            }

            using var start = new Barrier(2);
            Task[] replicas = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
            {
                start.SignalAndWait();
                new VersionDownloader(http, local, null).ApplyRetention(retained: 1, live: VersionCount);
            })).ToArray();

            await Should.NotThrowAsync(Task.WhenAll(replicas));
            local.ListVersionNumbers().ShouldBe([(long)VersionCount]);
        }
    }

    // A replica's retention runs after a version is live, so a version it cannot delete (here one the system denies) is
    // reported and skipped, and the other old versions are deleted all the same.
    [UndeletableDirectoryFact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task RetentionSkipsUndeletableVersion()
    {
        for (long number = 1; number <= 3; number++)
        {
            string directory = Directory.CreateDirectory(local.VersionDirectory(number)).FullName;
            await File.WriteAllBytesAsync(Path.Combine(directory, ModelStore.WeightsFileName), new byte[64]);
        }

        string undeletable = local.VersionDirectory(1);
        UndeletableDirectoryFactAttribute.Protect(undeletable);
        try
        {
            IReadOnlyList<RetentionFailure> failures = new VersionDownloader(http, local, null).ApplyRetention(retained: 1, live: 3);

            failures.Count.ShouldBe(1);
            failures[0].Version.ShouldBe(1);
            failures[0].Path.ShouldBe(undeletable);
            failures[0].Error.ShouldBeOfType<UnauthorizedAccessException>();
            Directory.Exists(local.VersionDirectory(2)).ShouldBeFalse("retention stopped at the version it could not delete");
            local.ListVersionNumbers().ShouldBe([1L, 3L]);
        }
        finally
        {
            UndeletableDirectoryFactAttribute.Unprotect(undeletable);
        }
    }

    // Replicas may share one volume and a host name, and in containers they all run as process 1, so neither name
    // nor age shows whether a download is running. A replica at start deletes a download only when it can take the
    // download's lock, which a flock process outside this one holds here as another replica would. A directory without
    // a lock file is the form of an earlier release and is deleted only after a day and an hour without writes.
    [FlockFact]
    public async Task AbandonedDownloadCleanupKeepsLockedOnes()
    {
        string host = Environment.MachineName;
        string samePid = CreateDownload($"{host}-{Environment.ProcessId}", age: TimeSpan.Zero, withLockFile: true);
        string oldLocked = CreateDownload($"{host}-1", age: TimeSpan.FromHours(2), withLockFile: true);
        string unlocked = CreateDownload("other-replica-1", age: TimeSpan.Zero, withLockFile: true);
        string lockless = CreateDownload($"{host}-1", age: TimeSpan.FromHours(2), withLockFile: false);
        string oldLockless = CreateDownload(null, age: TimeSpan.FromHours(26), withLockFile: false);
        using Process holdingSamePid = await HoldLockAsync(samePid);
        using Process holdingOld = await HoldLockAsync(oldLocked);
        try
        {
            new VersionDownloader(http, local, null).RemoveAbandonedDownloads();

            Directory.Exists(samePid).ShouldBeTrue("a locked download named for this host and process id was deleted");
            Directory.Exists(oldLocked).ShouldBeTrue("a locked download without writes for two hours was deleted");
            Directory.Exists(unlocked).ShouldBeFalse("a download whose lock was free was kept");
            Directory.Exists(lockless).ShouldBeTrue("a download without a lock file was deleted after two hours");
            Directory.Exists(oldLockless).ShouldBeFalse("a download without a lock file untouched for 26 hours was kept");
        }
        finally
        {
            holdingSamePid.Kill(entireProcessTree: true);
            holdingOld.Kill(entireProcessTree: true);
        }
    }

    // Replicas that share a volume may run as other users, whose abandoned downloads this one cannot delete. Such a
    // directory is reported, and the cleanup goes on to the others.
    [UndeletableDirectoryFact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void CleanupSkipsUndeletableDownload()
    {
        string undeletable = CreateDownload(null, age: TimeSpan.FromHours(26), withLockFile: false);
        string deletable = CreateDownload(null, age: TimeSpan.FromHours(26), withLockFile: false);
        UndeletableDirectoryFactAttribute.Protect(undeletable);
        try
        {
            IReadOnlyList<string> removed = new VersionDownloader(http, local, null)
                .RemoveAbandonedDownloads(out IReadOnlyList<DownloadCleanupFailure> failures);

            removed.ShouldBe([deletable]);
            failures.Count.ShouldBe(1);
            failures[0].Path.ShouldBe(undeletable);
            failures[0].Error.ShouldBeOfType<UnauthorizedAccessException>();
            Directory.Exists(deletable).ShouldBeFalse("the cleanup stopped at the directory it could not delete");
        }
        finally
        {
            UndeletableDirectoryFactAttribute.Unprotect(undeletable);
        }
    }

    // A replica that starts on the volume while another process downloads must leave that download alone. Here both run
    // in this process, so the directory carries the cleanup's own host name and process id.
    [FlockFact]
    public async Task CleanupDuringDownloadKeepsIt()
    {
        ModelVersionAnnouncement announcement = Announce(1);
        string[] removed = [];
        using var interleaving = new HttpClient(new BeforeWeightsHandler(() =>
        {
            removed = [.. new VersionDownloader(http, local, null).RemoveAbandonedDownloads()];
            return Task.CompletedTask;
        }));

        ModelVersion installed = await new VersionDownloader(interleaving, local, null).InstallAsync(announcement, CancellationToken.None);

        removed.ShouldBeEmpty();
        installed.Number.ShouldBe(1);
        File.Exists(Path.Combine(installed.Directory, ".download.lock")).ShouldBeFalse("the lock file moved into the version");
        Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
    }

    // The replica's store is a tmpfs with room for the spec, the manifest and half of the weights, so the download fails
    // with ENOSPC while it writes the weights. The default model's weights (about 1 MB) are much larger than the 4 KiB
    // that each small file takes on tmpfs.
    [TmpfsFact(Timeout = 60_000)]
    public async Task FullVolumeFailureNamesBytes()
    {
        torch.manual_seed(4);
        using (nn.Module<Tensor, Tensor> module = Model.ModelFactory.Create(new Model.ModelSpec()))
        {
            source.Save(new Model.ModelSpec(), module, new ModelManifest());
        }

        ModelVersionAnnouncement announcement = Announce(2);
        const long PageBytes = 4096;
        long volumeBytes = (announcement.WeightsBytes / 2 / PageBytes + 2) * PageBytes;
        string volume = Directory.CreateDirectory(Path.Combine(root, "small-volume")).FullName;
        (int exitCode, string error) = TmpfsFactAttribute.Run("mount", "-t", "tmpfs", "-o", $"size={volumeBytes}", "tmpfs", volume);
        exitCode.ShouldBe(0, error);
        try
        {
            var small = new ModelStore(volume);

            ReplicaVolumeFullException exception = await Should.ThrowAsync<ReplicaVolumeFullException>(
                new VersionDownloader(http, small, null).InstallAsync(announcement, CancellationToken.None));

            exception.Version.ShouldBe(2);
            exception.RequiredBytes.ShouldBe(announcement.WeightsBytes);
            exception.AvailableBytes.ShouldBeLessThan(announcement.WeightsBytes);
            exception.AvailableBytes.ShouldBeGreaterThan(0, "the partial download was not deleted before the free bytes were measured");
            exception.Message.ShouldContain($"Version 2 does not fit in {volume}");
            exception.Message.ShouldContain($"{announcement.WeightsBytes} bytes for its weights");
            exception.Message.ShouldContain($"{exception.AvailableBytes} bytes are free");
            small.ListVersionNumbers().ShouldBeEmpty();
            Directory.GetDirectories(volume, ".download-*").ShouldBeEmpty();
        }
        finally
        {
            TmpfsFactAttribute.Run("umount", volume);
        }
    }

    [Theory]
    [InlineData("store/v1/versions/1/secret.txt", HttpStatusCode.NotFound)]
    [InlineData("store/v1/versions/1/..%2F..%2Fmanifest.json", HttpStatusCode.NotFound)]
    [InlineData("store/v1/versions/2/weights.bin", HttpStatusCode.NotFound)]
    [InlineData("store/v1/versions/1/weights.bin", HttpStatusCode.OK)]
    [InlineData("store/v1/versions/abc/weights.bin", HttpStatusCode.BadRequest)]
    [InlineData("store/v1/versions/-1/weights.bin", HttpStatusCode.BadRequest)]
    public async Task StoreApiServesOnlyVersionFiles(string path, HttpStatusCode expected)
    {
        using HttpResponseMessage response = await http.GetAsync(new Uri(new Uri(storeUrl), path));

        response.StatusCode.ShouldBe(expected);
    }

    // The file segment is the client's text, so the 404 repeats a bounded prefix of it.
    [Fact]
    public async Task StoreApiTruncatesUnknownFileName()
    {
        string file = new('x', 4_000);

        using HttpResponseMessage response = await http.GetAsync(new Uri(new Uri(storeUrl), "store/v1/versions/1/" + file));

        response.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        string body = await response.Content.ReadAsStringAsync();
        body.ShouldContain(ClientText.Truncate(file));
        body.Length.ShouldBeLessThan(400);
    }

    [Fact]
    public async Task StoreApiIsReadOnly()
    {
        using var content = new ByteArrayContent([1, 2, 3]);
        using HttpResponseMessage response = await http.PutAsync(new Uri(new Uri(storeUrl), "store/v1/versions/1/weights.bin"), content);

        response.StatusCode.ShouldBe(HttpStatusCode.MethodNotAllowed);
    }

    // Creates a temporary download directory named for owner ("HOST-PID", or null for none) with a partial weights file
    // and, when withLockFile is set, an unlocked lock file, and sets all their write times age ago.
    private string CreateDownload(string? owner, TimeSpan age, bool withLockFile)
    {
        string guid = Guid.NewGuid().ToString("N");
        string path = Path.Combine(local.RootDirectory, owner is null ? $".download-{guid}" : $".download-{owner}-{guid}");
        Directory.CreateDirectory(path);
        DateTime written = DateTime.UtcNow - age;
        List<string> files = [Path.Combine(path, ModelStore.WeightsFileName)];
        if (withLockFile)
        {
            files.Add(Path.Combine(path, ".download.lock"));
        }

        foreach (string file in files)
        {
            File.WriteAllBytes(file, [1, 2, 3]);
            File.SetLastWriteTimeUtc(file, written);
        }

        Directory.SetLastWriteTimeUtc(path, written);
        return path;
    }

    // Starts flock(1) holding the download lock of directory, as the process of another replica would, and returns once
    // it holds the lock. The caller kills the process tree.
    private static async Task<Process> HoldLockAsync(string directory)
    {
        var start = new ProcessStartInfo("flock", [Path.Combine(directory, ".download.lock"), "-c", "echo locked && exec sleep 60"])
        {
            RedirectStandardOutput = true,
        };
        Process holder = Process.Start(start)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        string? line = await holder.StandardOutput.ReadLineAsync(timeout.Token);
        line.ShouldBe("locked", "flock did not report that it holds the lock");
        return holder;
    }

    // Starts a store on 127.0.0.1 that serves version 1 of the source store. For weights.bin it waits headersDelay before
    // it sends the headers, sends the file in chunks with interval between them, and then, when stallAfterwards is set,
    // leaves the response open without sending the rest.
    private async Task<WebApplication> StartTricklingStoreAsync(
        int chunks, TimeSpan interval, bool stallAfterwards, TimeSpan headersDelay = default)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        WebApplication app = builder.Build();
        app.MapGet("/store/v1/versions/{version}/{file}", async (HttpContext context, string file) =>
        {
            byte[] content = await File.ReadAllBytesAsync(Path.Combine(source.VersionDirectory(1), file));
            if (file != ModelStore.WeightsFileName)
            {
                await context.Response.Body.WriteAsync(content, context.RequestAborted);
                return;
            }

            context.Response.ContentLength = content.Length;
            int chunkBytes = (content.Length + chunks - 1) / chunks;
            int sentChunks = stallAfterwards ? chunks - 1 : chunks;
            try
            {
                // Kestrel sends the headers with the first write.
                await Task.Delay(headersDelay, context.RequestAborted);
                for (int chunk = 0; chunk < sentChunks; chunk++)
                {
                    int offset = chunk * chunkBytes;
                    await context.Response.Body.WriteAsync(content.AsMemory(offset, Math.Min(chunkBytes, content.Length - offset)), context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                    await Task.Delay(interval, context.RequestAborted);
                }

                if (stallAfterwards)
                {
                    await Task.Delay(TimeSpan.FromSeconds(30), context.RequestAborted);
                }
            }
            catch (OperationCanceledException)
            {
                // The downloader gave up and closed the connection.
            }
        });
        await app.StartAsync();
        return app;
    }

    private static string AddressOf(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    private ModelVersionAnnouncement Announce(long number)
    {
        source.TryLoad(number, out ModelVersion? version).ShouldBeTrue();
        return ModelVersionAnnouncement.From(version!, storeUrl);
    }

    /// <summary>Handler that runs an action once, before it sends the first request for a weights file.</summary>
    private sealed class BeforeWeightsHandler(Func<Task> action) : DelegatingHandler(new HttpClientHandler())
    {
        private bool done;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (!done && request.RequestUri!.AbsolutePath.EndsWith("/" + ModelStore.WeightsFileName, StringComparison.Ordinal))
            {
                done = true;
                await action();
            }

            return await base.SendAsync(request, cancellationToken);
        }
    }
}
