using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Model.Tests.Store;

/// <summary>Keeps each message logged, and the event id and exception of each error.</summary>
internal sealed class RecordingStoreLogger : ILogger<ModelStore>
{
    private readonly List<string> messages = [];
    private readonly List<int> errors = [];
    private readonly List<Exception?> errorExceptions = [];

    public IReadOnlyList<string> Messages
    {
        get
        {
            lock (messages)
            {
                return [.. messages];
            }
        }
    }

    public IReadOnlyList<int> Errors
    {
        get
        {
            lock (messages)
            {
                return [.. errors];
            }
        }
    }

    public IReadOnlyList<Exception?> ErrorExceptions
    {
        get
        {
            lock (messages)
            {
                return [.. errorExceptions];
            }
        }
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (messages)
        {
            messages.Add(formatter(state, exception));
            if (logLevel >= LogLevel.Error)
            {
                errors.Add(eventId.Id);
                errorExceptions.Add(exception);
            }
        }
    }
}
