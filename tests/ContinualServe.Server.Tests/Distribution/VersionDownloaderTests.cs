using System.Net;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;
using ContinualServe.Server.Distribution;
using Microsoft.AspNetCore.Builder;
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

    [Fact]
    public async Task StoreApiIsReadOnly()
    {
        using var content = new ByteArrayContent([1, 2, 3]);
        using HttpResponseMessage response = await http.PutAsync(new Uri(new Uri(storeUrl), "store/v1/versions/1/weights.bin"), content);

        response.StatusCode.ShouldBe(HttpStatusCode.MethodNotAllowed);
    }

    private ModelVersionAnnouncement Announce(long number)
    {
        source.TryLoad(number, out ModelVersion? version).ShouldBeTrue();
        return ModelVersionAnnouncement.From(version!, storeUrl);
    }
}
