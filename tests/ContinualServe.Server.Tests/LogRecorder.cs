using Microsoft.Extensions.Logging;

namespace ContinualServe.Server.Tests;

/// <summary>A thread-safe logger that keeps the level, event id and message of each entry at <paramref name="minimumLevel"/> or above.</summary>
internal sealed class LogRecorder<TCategory>(LogLevel minimumLevel = LogLevel.Warning) : ILogger<TCategory>
{
    private readonly List<(LogLevel Level, int EventId, string Message)> entries = [];

    public IReadOnlyList<(LogLevel Level, int EventId, string Message)> Entries
    {
        get
        {
            lock (entries)
            {
                return [.. entries];
            }
        }
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (logLevel < minimumLevel)
        {
            return;
        }

        lock (entries)
        {
            entries.Add((logLevel, eventId.Id, formatter(state, exception)));
        }
    }
}
