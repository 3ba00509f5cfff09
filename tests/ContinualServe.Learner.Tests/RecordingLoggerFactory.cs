using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner.Tests;

/// <summary>A logger factory whose loggers all write to one <see cref="RecordingLogger"/>, whatever their category.</summary>
internal sealed class RecordingLoggerFactory(RecordingLogger logger) : ILoggerFactory
{
    public RecordingLoggerFactory()
        : this(new RecordingLogger())
    {
    }

    public RecordingLogger Logger { get; } = logger;

    public ILogger CreateLogger(string categoryName) => Logger;

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }
}
