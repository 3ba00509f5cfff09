using System.Net;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;
using Microsoft.AspNetCore.Builder;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>
/// HEAD on the learner's model store routes, with and without a store token: the status code and headers of GET,
/// Content-Length of a file included, without a body.
/// </summary>
public sealed class StoreHeadTests : IAsyncLifetime, IDisposable
{
    private const string Token = "store-head-tests-0123456789";
    private readonly string root = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
    private WebApplication? openStore;
    private WebApplication? guardedStore;
    private readonly HttpClient openClient = new() { Timeout = TimeSpan.FromSeconds(30) };
    private readonly HttpClient guardedClient = new() { Timeout = TimeSpan.FromSeconds(30) };

    public async Task InitializeAsync()
    {
        var store = new ModelStore(Path.Combine(root, "learner"));
        torch.manual_seed(5);
        using nn.Module<Tensor, Tensor> module = Model.ModelFactory.Create(RunningServer.Spec);
        store.Save(RunningServer.Spec, module, new ModelManifest());
        string tokenFile = Path.Combine(root, "store-token");
        await File.WriteAllTextAsync(tokenFile, Token);
        (openStore, string openUrl) = await StoreServer.StartAsync(store);
        (guardedStore, string guardedUrl) = await StoreServer.StartAsync(store, tokenFile);
        openClient.BaseAddress = new Uri(openUrl + "/");
        guardedClient.BaseAddress = new Uri(guardedUrl + "/");
    }

    public void Dispose()
    {
        openClient.Dispose();
        guardedClient.Dispose();
    }

    public async Task DisposeAsync()
    {
        foreach (WebApplication? app in new[] { openStore, guardedStore })
        {
            if (app is not null)
            {
                await app.DisposeAsync();
            }
        }

        Directory.Delete(root, recursive: true);
    }

    [Theory]
    [InlineData("store/v1/versions", HttpStatusCode.OK, false)]
    [InlineData("store/v1/versions/1/manifest.json", HttpStatusCode.OK, true)]
    [InlineData("store/v1/versions/1/spec.json", HttpStatusCode.OK, true)]
    [InlineData("store/v1/versions/1/weights.bin", HttpStatusCode.OK, true)]
    [InlineData("store/v1/versions/x/weights.bin", HttpStatusCode.BadRequest, false)]
    [InlineData("store/v1/versions/1/other.bin", HttpStatusCode.NotFound, false)]
    [InlineData("store/v1/versions/9/weights.bin", HttpStatusCode.NotFound, false)]
    public async Task HeadMatchesGetWithoutBody(string path, HttpStatusCode expected, bool withContentLength)
    {
        await HeadResponses.ShouldMatchGetAsync(openClient, path, expected, withContentLength);
        await HeadResponses.ShouldMatchGetAsync(guardedClient, path, expected, withContentLength, bearerToken: Token);
    }

    [Theory]
    [InlineData("store/v1/versions")]
    [InlineData("store/v1/versions/1/weights.bin")]
    public async Task HeadWithoutTokenMatchesGet(string path)
    {
        await HeadResponses.ShouldMatchGetAsync(guardedClient, path, HttpStatusCode.Unauthorized);
    }
}
