using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Hosting;

/// <summary>Logs the server's start (with its addresses, model and store) and stop, with event ids 420 and 421.</summary>
public sealed partial class ServerLifecycleLog : IHostedLifecycleService
{
    private readonly IServer server;
    private readonly ServerOptions options;
    private readonly ILogger<ServerLifecycleLog> logger;

    public ServerLifecycleLog(IServer server, IOptions<ServerOptions> options, ILogger<ServerLifecycleLog> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.server = server;
        this.options = options.Value;
        this.logger = logger;
    }

    public Task StartedAsync(CancellationToken cancellationToken)
    {
        if (logger.IsEnabled(LogLevel.Information))
        {
            string addresses = string.Join(' ', server.Features.Get<IServerAddressesFeature>()?.Addresses ?? []);
            LogStarted(logger, addresses, options.ModelName, options.StoreDirectory);
        }

        return Task.CompletedTask;
    }

    public Task StoppedAsync(CancellationToken cancellationToken)
    {
        LogStopped(logger, options.ModelName);
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 420, Level = LogLevel.Information, Message = "Server listening on {Addresses} for model {Model} (store {StoreDirectory})")]
    private static partial void LogStarted(ILogger logger, string addresses, string model, string storeDirectory);

    [LoggerMessage(EventId = 421, Level = LogLevel.Information, Message = "Server for model {Model} stopped")]
    private static partial void LogStopped(ILogger logger, string model);
}
