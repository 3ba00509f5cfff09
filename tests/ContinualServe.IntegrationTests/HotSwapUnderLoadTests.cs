using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using ContinualServe.Model;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.IntegrationTests;

/// <summary>Swaps versions into a running HTTP server while clients send inference requests.</summary>
public sealed class HotSwapUnderLoadTests
{
    private const int Swaps = 24;
    private const int Clients = 8;

    private static readonly ModelSpec Spec = new()
    {
        Name = "swap-model",
        InputShape = [784],
        Labels = ModelSpec.FashionMnistLabels,
        HiddenSizes = [64],
    };

    [Fact]
    public async Task SwapsUnderLoadFailNoRequest()
    {
        string directory = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
        var store = new ModelStore(directory, retainedVersions: 100);
        for (int version = 1; version <= Swaps + 1; version++)
        {
            torch.manual_seed(version);
            using nn.Module<Tensor, Tensor> module = ModelFactory.Create(Spec);
            store.Save(Spec, module, new ModelManifest());
        }

        await using WebApplication app = ServerHost.Build(["--Logging:LogLevel:Default=Warning"], "http://127.0.0.1:0", options =>
        {
            options.ModelName = Spec.Name;
            options.StoreDirectory = directory;
        }, pollStore: false);
        ModelSwapper swapper = app.Services.GetRequiredService<ModelSwapper>();
        var retired = new ConcurrentBag<ServedModel>();
        app.Services.GetRequiredService<LiveModel>().Swapped += (previous, _) =>
        {
            if (previous is not null)
            {
                retired.Add(previous);
            }
        };
        LoadVersion(store, swapper, 1);
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/");

        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var versionsSeen = new ConcurrentDictionary<string, int>();
        long succeeded = 0;
        long failed = 0;
        string body = RequestBody();
        Task[] clients = Enumerable.Range(0, Clients).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var content = new StringContent(body, Encoding.UTF8, "application/json");
                    using HttpResponseMessage response = await http.PostAsync("v2/models/swap-model/infer", content, CancellationToken.None);
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        Interlocked.Increment(ref failed);
                        continue;
                    }

                    using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsStringAsync(CancellationToken.None));
                    versionsSeen.AddOrUpdate(document.RootElement.GetProperty("model_version").GetString()!, 1, (_, count) => count + 1);
                    Interlocked.Increment(ref succeeded);
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref failed);
                }
            }
        })).ToArray();

        for (int version = 2; version <= Swaps + 1; version++)
        {
            long target = Interlocked.Read(ref succeeded) + Clients;
            while (Interlocked.Read(ref succeeded) < target && !stop.IsCancellationRequested)
            {
                await Task.Delay(2);
            }

            LoadVersion(store, swapper, version);
        }

        long target2 = Interlocked.Read(ref succeeded) + Clients;
        while (Interlocked.Read(ref succeeded) < target2 && !stop.IsCancellationRequested)
        {
            await Task.Delay(2);
        }

        await stop.CancelAsync();
        await Task.WhenAll(clients);
        await app.StopAsync();

        failed.ShouldBe(0);
        stop.Token.IsCancellationRequested.ShouldBeTrue();
        retired.Count.ShouldBe(Swaps);
        retired.ShouldAllBe(model => model.IsDisposed);
        versionsSeen.Count.ShouldBeGreaterThan(Swaps / 2);
        versionsSeen.ShouldContainKey((Swaps + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    private static void LoadVersion(ModelStore store, ModelSwapper swapper, long number)
    {
        store.TryLoad(number, out ModelVersion? version).ShouldBeTrue();
        swapper.TrySwap(version!).ShouldBeTrue();
    }

    private static string RequestBody()
    {
        string data = string.Join(",", Enumerable.Range(0, 784).Select(index => (index * 37 % 256).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        return $"{{\"inputs\":[{{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":[{data}]}}]}}";
    }
}
