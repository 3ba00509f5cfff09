using System.Net;
using System.Net.Sockets;
using ContinualServe.Model.Store;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Server.Tests.Management;

/// <summary>A server with the management API enabled by a token file, on its own port or the inference port.</summary>
internal sealed class ManagementServer : IAsyncDisposable
{
    public const string Token = "test-management-token-0123456789";

    // The management API needs a fixed port of its own, so the ports are probed before the start. Another socket can
    // take one in between, and then the start is retried on fresh ports.
    private const int MaxStartAttempts = 3;

    private ManagementServer(WebApplication app, ModelStore store, int inferencePort, int managementPort)
    {
        App = app;
        Store = store;
        Inference = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{inferencePort}/"), Timeout = TimeSpan.FromSeconds(30) };
        Management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}/"), Timeout = TimeSpan.FromSeconds(30) };
    }

    public WebApplication App { get; }

    public ModelStore Store { get; }

    public HttpClient Inference { get; }

    public HttpClient Management { get; }

    /// <summary>
    /// Starts a server; <paramref name="storeDirectory"/> reuses an earlier server's store, as after a restart.
    /// <paramref name="logs"/>, when given, receives the server's log entries besides the console.
    /// </summary>
    public static async Task<ManagementServer> StartAsync(
        int versions, bool separatePort, string? storeDirectory = null, ILoggerProvider? logs = null, params string[] extraArguments)
    {
        string directory = storeDirectory ?? Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
        var store = new ModelStore(directory, retainedVersions: 100);
        for (int version = 1; version <= versions; version++)
        {
            RunningServer.SaveVersion(store, version);
        }

        string tokenFile = Path.Combine(directory, "management-token");
        await File.WriteAllTextAsync(tokenFile, Token + "\n");
        for (int attempt = 1; ; attempt++)
        {
            int inferencePort = FreePort();
            int managementPort = inferencePort;

            // Two calls of FreePort can return the same port, because the first listener has released it.
            while (separatePort && managementPort == inferencePort)
            {
                managementPort = FreePort();
            }

            WebApplication app = Build(directory, tokenFile, inferencePort, separatePort ? managementPort : null, logs, extraArguments);
            try
            {
                await app.StartAsync();
                return new ManagementServer(app, store, inferencePort, managementPort);
            }
            catch (IOException exception) when (attempt < MaxStartAttempts && exception.Message.StartsWith("Failed to bind", StringComparison.Ordinal))
            {
                await app.DisposeAsync();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        Inference.Dispose();
        Management.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }

    private static WebApplication Build(
        string directory, string tokenFile, int inferencePort, int? managementPort, ILoggerProvider? logs, string[] extraArguments)
    {
        var arguments = new List<string> { "--Logging:LogLevel:Default=Warning", "--Management:TokenFile=" + tokenFile };
        arguments.AddRange(extraArguments);
        if (managementPort is not null)
        {
            arguments.Add($"--Management:Urls=http://127.0.0.1:{managementPort}");
        }

        WebApplication app = ServerHost.Build([.. arguments], $"http://127.0.0.1:{inferencePort}", options =>
        {
            options.ModelName = RunningServer.Spec.Name;
            options.StoreDirectory = directory;
        }, pollStore: false, configureBuilder: builder =>
        {
            if (logs is not null)
            {
                builder.Logging.AddProvider(logs);
            }
        });
        app.Services.GetRequiredService<ModelSwapper>().TrySwapToLatest();
        return app;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
