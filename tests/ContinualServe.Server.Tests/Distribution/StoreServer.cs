using ContinualServe.Model.Store;
using ContinualServe.Server.Distribution;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
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
        return (app, app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }
}
