using Microsoft.Extensions.Logging;

namespace ContinualServe.Server.Tests;

/// <summary>A logger provider that sends the entries of every category at <paramref name="minimumLevel"/> or above to <see cref="Recorder"/>.</summary>
internal sealed class RecordingLoggerProvider(LogLevel minimumLevel = LogLevel.Warning) : ILoggerProvider
{
    public LogRecorder<RecordingLoggerProvider> Recorder { get; } = new(minimumLevel);

    public ILogger CreateLogger(string categoryName) => Recorder;

    public void Dispose()
    {
    }
}
