using ContinualServe.Model;
using ContinualServe.Model.Store;
using ContinualServe.Server.Batching;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Server.Tests;

/// <summary>A real Kestrel server on 127.0.0.1 with a free port, serving a small model from a temporary store.</summary>
internal sealed class RunningServer : IAsyncDisposable
{
    public static readonly ModelSpec Spec = new()
    {
        Name = "test-model",
        InputShape = [16],
        Labels = ["a", "b", "c"],
        HiddenSizes = [8],
        InputScale = 1f,
    };

    private RunningServer(WebApplication app, ModelStore store, Uri baseAddress)
    {
        App = app;
        Store = store;
        Client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public WebApplication App { get; }

    public ModelStore Store { get; }

    public HttpClient Client { get; }

    public ModelSwapper Swapper => App.Services.GetRequiredService<ModelSwapper>();

    /// <summary>
    /// Starts a server whose store contains <paramref name="versions"/> versions, the newest of them live.
    /// <paramref name="logs"/>, when given, receives the server's log entries besides the console.
    /// </summary>
    public static async Task<RunningServer> StartAsync(
        int versions = 1,
        long maxRequestBodyBytes = 1024 * 1024,
        Action<BatchingOptions>? configureBatching = null,
        ILoggerProvider? logs = null,
        params string[] arguments)
    {
        string directory = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
        var store = new ModelStore(directory, retainedVersions: 1000);
        for (int version = 1; version <= versions; version++)
        {
            SaveVersion(store, version);
        }

        WebApplication app = ServerHost.Build(["--Logging:LogLevel:Default=Warning", .. arguments], "http://127.0.0.1:0", options =>
        {
            options.ModelName = Spec.Name;
            options.StoreDirectory = directory;
            options.MaxRequestBodyBytes = maxRequestBodyBytes;
            options.MaxBatchSize = 64;
        }, pollStore: false, configureBatching, builder =>
        {
            if (logs is not null)
            {
                builder.Logging.AddProvider(logs);
            }
        });
        app.Services.GetRequiredService<ModelSwapper>().TrySwapToLatest();
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new RunningServer(app, store, new Uri(address + "/"));
    }

    public static ModelVersion SaveVersion(ModelStore store, int seed)
    {
        torch.manual_seed(seed);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(Spec);
        return store.Save(Spec, module, new ModelManifest());
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
