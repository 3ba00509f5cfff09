using System.Threading.Channels;
using ContinualServe.Model.Store;
using ContinualServe.Server.Distribution;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>Serves a model store's API on 127.0.0.1 as the learner does.</summary>
internal static class StoreServer
{
    /// <summary>
    /// Starts the store API over <paramref name="store"/>, behind the token in <paramref name="tokenFile"/> when one is
    /// given, and returns the application and its base URL. The caller disposes the application.
    /// </summary>
    public static async Task<(WebApplication App, string Url)> StartAsync(ModelStore store, string? tokenFile = null)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddDistributionOptions();
        if (tokenFile is not null)
        {
            builder.Configuration["Distribution:StoreTokenFile"] = tokenFile;
        }

        WebApplication app = builder.Build();
        app.MapModelStoreApi(() => store);
        await app.StartAsync();
        return (app, AddressOf(app));
    }

    /// <summary>
    /// Starts a store on 127.0.0.1 that serves the files of <paramref name="store"/>, except that it responds to a
    /// request for the weights of <see cref="StalledWeights.Version"/> with headers only, and then sends nothing until
    /// the client disconnects or 2 minutes pass. The caller disposes the application.
    /// </summary>
    public static async Task<(WebApplication App, string Url)> StartStallingAsync(ModelStore store, StalledWeights stall)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        WebApplication app = builder.Build();
        app.MapGet("/store/v1/versions/{version}/{file}", async (HttpContext context, long version, string file) =>
        {
            if (file != ModelStore.WeightsFileName || version != stall.Version)
            {
                await context.Response.SendFileAsync(Path.Combine(store.VersionDirectory(version), file), context.RequestAborted);
                return;
            }

            await context.Response.StartAsync(context.RequestAborted);
            stall.Requested.TrySetResult();
            try
            {
                await Task.Delay(TimeSpan.FromMinutes(2), context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                stall.Aborted.TrySetResult();
            }
        });
        await app.StartAsync();
        return (app, AddressOf(app));
    }

    /// <summary>
    /// Starts a store on 127.0.0.1 that serves the files of <paramref name="store"/>, except that it holds back the
    /// weights of every version for <see cref="SlowWeights.Delay"/> after the response headers, as a slow link does.
    /// It writes the version of each weights request to <see cref="SlowWeights.Requests"/>. The caller disposes the
    /// application.
    /// </summary>
    public static async Task<(WebApplication App, string Url)> StartSlowAsync(ModelStore store, SlowWeights slow)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        WebApplication app = builder.Build();
        app.MapGet("/store/v1/versions/{version}/{file}", async (HttpContext context, long version, string file) =>
        {
            string path = Path.Combine(store.VersionDirectory(version), file);
            if (file == ModelStore.WeightsFileName)
            {
                await context.Response.StartAsync(context.RequestAborted);
                slow.Requests.Writer.TryWrite(version);
                await Task.Delay(slow.Delay, context.RequestAborted);
            }

            await context.Response.SendFileAsync(path, context.RequestAborted);
        });
        await app.StartAsync();
        return (app, AddressOf(app));
    }

    private static string AddressOf(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    /// <summary>The version whose weights a stalling store holds back, and when a client requested them and disconnected.</summary>
    internal sealed class StalledWeights(long version)
    {
        public long Version { get; } = version;

        public TaskCompletionSource Requested { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Aborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>How long a slow store holds back each version's weights, and the versions whose weights were requested.</summary>
    internal sealed class SlowWeights(TimeSpan delay)
    {
        // A change applies to the requests that arrive after it.
        public TimeSpan Delay { get; set; } = delay;

        public Channel<long> Requests { get; } = Channel.CreateUnbounded<long>();
    }
}
