using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace ContinualServe.IntegrationTests.Reliability;

/// <summary>A Kestrel server on 127.0.0.1 that serves the newest intact version of an existing model store.</summary>
internal sealed class RunningStoreServer : IAsyncDisposable
{
    private RunningStoreServer(WebApplication app, Uri address)
    {
        App = app;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    public WebApplication App { get; }

    public HttpClient Client { get; }

    public static async Task<RunningStoreServer> StartAsync(string storeDirectory, string modelName, bool pollStore = false)
    {
        WebApplication app = ServerHost.Build(["--Logging:LogLevel:Default=Warning"], "http://127.0.0.1:0", options =>
        {
            options.ModelName = modelName;
            options.StoreDirectory = storeDirectory;
            options.StorePollInterval = TimeSpan.FromMilliseconds(100);
        }, pollStore);
        app.Services.GetRequiredService<ModelSwapper>().TrySwapToLatest();
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new RunningStoreServer(app, new Uri(address + "/"));
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
