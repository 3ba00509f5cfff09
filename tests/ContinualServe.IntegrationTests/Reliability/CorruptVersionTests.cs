using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ContinualServe.Model;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Server.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.IntegrationTests.Reliability;

/// <summary>A polling server meets a corrupt newest version: it refuses it, keeps serving, and takes the next good one.</summary>
public sealed class CorruptVersionTests
{
    private static readonly ModelSpec Spec = new() { Name = "corrupt-test", InputShape = [784], Labels = ModelSpec.FashionMnistLabels, HiddenSizes = [32] };

    [Fact]
    public async Task CorruptNewestVersionIsNotServed()
    {
        string root = LearnerFixture.TemporaryRoot();
        var store = new ModelStore(Path.Combine(root, "served"));
        var staging = new ModelStore(Path.Combine(root, "staging"));
        for (int seed = 1; seed <= 3; seed++)
        {
            Save(seed <= 2 ? store : staging, seed);
        }

        await using RunningStoreServer server = await RunningStoreServer.StartAsync(store.RootDirectory, Spec.Name, pollStore: true);
        LiveModel live = server.App.Services.GetRequiredService<LiveModel>();
        ModelStore serverStore = server.App.Services.GetRequiredService<ModelSwapper>().Store;
        StorePoller poller = server.App.Services.GetServices<IHostedService>().OfType<StorePoller>().Single();
        live.CurrentVersion.ShouldBe(2);

        // Staging version 1 becomes version 3 of the served store with one flipped byte in its weights.
        string corrupt = staging.VersionDirectory(1);
        byte[] weights = await File.ReadAllBytesAsync(Path.Combine(corrupt, ModelStore.WeightsFileName));
        weights[weights.Length / 2] ^= 0xFF;
        await File.WriteAllBytesAsync(Path.Combine(corrupt, ModelStore.WeightsFileName), weights);
        await RenumberAsync(corrupt, 3);
        long hashedBefore = serverStore.WeightsHashed;
        Directory.Move(corrupt, store.VersionDirectory(3));

        // The poll in progress may have listed the store before the move, so the one after it is the first that must
        // read version 3.
        long pollsAfterMove = poller.CompletedPolls + 2;
        (await LearnerFixture.WaitUntilAsync(() => poller.CompletedPolls >= pollsAfterMove, TimeSpan.FromSeconds(10)))
            .ShouldBeTrue("the server did not poll its store twice within 10 s");
        serverStore.WeightsHashed.ShouldBeGreaterThan(hashedBefore, "the server did not read version 3's weights");
        live.CurrentVersion.ShouldBe(2);
        (await InferAsync(server)).ShouldBe("2");

        Save(store, 4);
        (await LearnerFixture.WaitUntilAsync(() => live.CurrentVersion == 4, TimeSpan.FromSeconds(10))).ShouldBeTrue();
        (await InferAsync(server)).ShouldBe("4");
    }

    private static void Save(ModelStore store, int seed)
    {
        torch.manual_seed(seed);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(Spec);
        store.Save(Spec, module, new ModelManifest());
    }

    private static async Task RenumberAsync(string directory, long version)
    {
        string path = Path.Combine(directory, ModelStore.ManifestFileName);
        ModelManifest manifest = JsonSerializer.Deserialize<ModelManifest>(await File.ReadAllBytesAsync(path), ModelManifest.JsonOptions)!;
        await File.WriteAllBytesAsync(path, JsonSerializer.SerializeToUtf8Bytes(manifest with { Version = version }, ModelManifest.JsonOptions));
    }

    private static async Task<string?> InferAsync(RunningStoreServer server)
    {
        using HttpResponseMessage response = await server.Client.PostAsJsonAsync(
            $"v2/models/{Spec.Name}/infer",
            new { inputs = new[] { new { name = "input", datatype = "FP32", shape = new[] { 1, 784 }, data = new float[784] } } });
        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("model_version").GetString();
    }
}
