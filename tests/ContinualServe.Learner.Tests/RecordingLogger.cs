using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner.Tests;

/// <summary>A thread-safe logger that keeps each formatted message with its level, for tests that read what was logged.</summary>
internal sealed class RecordingLogger : ILogger
{
    private readonly List<(LogLevel Level, string Message)> entries = [];
    private readonly List<LogRecord> records = [];

    public IReadOnlyList<string> Messages => Entries.Select(entry => entry.Message).ToArray();

    public IReadOnlyList<(LogLevel Level, string Message)> Entries
    {
        get
        {
            lock (entries)
            {
                return [.. entries];
            }
        }
    }

    /// <summary>Every entry with its event id and exception, in the order logged.</summary>
    public IReadOnlyList<LogRecord> Records
    {
        get
        {
            lock (entries)
            {
                return [.. records];
            }
        }
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (entries)
        {
            string message = formatter(state, exception);
            entries.Add((logLevel, message));
            records.Add(new LogRecord(logLevel, eventId.Id, message, exception));
        }
    }
}

/// <summary>One logged entry: its level, event id, formatted message and exception.</summary>
internal sealed record LogRecord(LogLevel Level, int EventId, string Message, Exception? Exception);
