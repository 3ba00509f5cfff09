using System.Net;
using System.Text.Json;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;
using Microsoft.AspNetCore.Builder;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>
/// The learner's model store API after its store directory was removed or replaced: every route gets 503 with a JSON
/// error that names the directory, never an empty 500 or the files of the replacement.
/// </summary>
public sealed class StoreDirectoryGoneTests : IAsyncLifetime, IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
    private readonly HttpClient client = new() { Timeout = TimeSpan.FromSeconds(30) };
    private WebApplication? app;
    private string storePath = "";

    public async Task InitializeAsync()
    {
        storePath = Path.Combine(root, "learner");
        var store = new ModelStore(storePath);
        torch.manual_seed(5);
        using nn.Module<Tensor, Tensor> module = Model.ModelFactory.Create(RunningServer.Spec);
        store.Save(RunningServer.Spec, module, new ModelManifest());
        (app, string url) = await StoreServer.StartAsync(store);
        client.BaseAddress = new Uri(url + "/");
    }

    public void Dispose() => client.Dispose();

    public async Task DisposeAsync()
    {
        if (app is not null)
        {
            await app.DisposeAsync();
        }

        Directory.Delete(root, recursive: true);
    }

    public static TheoryData<string, bool> Cases => new()
    {
        { "store/v1/versions", false },
        { "store/v1/versions/1/manifest.json", false },
        { "store/v1/versions", true },
        { "store/v1/versions/1/weights.bin", true },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task GoneStoreGets503(string path, bool replaced)
    {
        Directory.Move(storePath, storePath + "-moved");
        if (replaced)
        {
            // A copy of the old store in its place: same files, another directory.
            CopyDirectory(storePath + "-moved", storePath);
        }

        using HttpResponseMessage response = await client.GetAsync(path);

        response.StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        response.Content.Headers.ContentType?.MediaType.ShouldBe("application/json");
        using JsonDocument body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        body.RootElement.GetProperty("error").GetString()!.ShouldStartWith($"Reading the model store {storePath} failed: ");
    }

    private static void CopyDirectory(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (string file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            string copy = Path.Combine(target, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(file, copy);
        }
    }
}
