using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Kafka;

public sealed class KafkaClientLogTests
{
    [Theory]
    [InlineData(SyslogLevel.Critical, LogLevel.Error)]
    [InlineData(SyslogLevel.Error, LogLevel.Warning)]
    [InlineData(SyslogLevel.Warning, LogLevel.Warning)]
    [InlineData(SyslogLevel.Info, LogLevel.Information)]
    [InlineData(SyslogLevel.Debug, LogLevel.Debug)]
    public void SyslogLevelMapsToLogLevel(SyslogLevel syslog, LogLevel expected)
    {
        var logger = new RecordingLogger();

        new KafkaClientLog(logger).OnLog(null!, new LogMessage("rdkafka#producer-1", syslog, "FAIL", "connection refused"));

        logger.Entries.Single().Level.ShouldBe(expected);
        logger.Entries.Single().Message.ShouldBe("librdkafka rdkafka#producer-1 FAIL: connection refused");
    }

    [Fact]
    public void RepeatedLinesAreThinnedOut()
    {
        var logger = new RecordingLogger();
        var clientLog = new KafkaClientLog(logger);

        for (int line = 1; line <= 250; line++)
        {
            clientLog.OnLog(null!, new LogMessage("rdkafka#producer-1", SyslogLevel.Error, "FAIL", $"attempt {line}"));
        }

        string[] expected = [.. Enumerable.Range(1, 10).Select(line => $"attempt {line}"), "attempt 100", "attempt 200"];
        logger.Messages.Select(message => message[(message.LastIndexOf(':') + 2)..]).ShouldBe(expected);
    }

    [Fact(Timeout = 30_000)]
    public async Task RefusedConnectionReachesLogger()
    {
        await Task.Run(async () =>
        {
            var logger = new RecordingLogger();
            var clientLog = new KafkaClientLog(logger);

            // Nothing is expected to listen on port 9 (discard) of 127.0.0.1, so librdkafka reports a refused connection.
            using (IProducer<string, string> producer = new ProducerBuilder<string, string>(KafkaDefaults.CreateProducerConfig("127.0.0.1:9"))
                .SetLogHandler(clientLog.OnLog)
                .SetErrorHandler(clientLog.OnError)
                .Build())
            {
                // librdkafka logs the refused connection and reports the error through separate callbacks, in either order.
                DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
                while (!(logger.Messages.Any(message => message.Contains("Connection refused", StringComparison.Ordinal))
                    && logger.Messages.Any(message => message.StartsWith("Kafka client error Local_Transport", StringComparison.Ordinal))))
                {
                    DateTime.UtcNow.ShouldBeLessThan(deadline, "no refused connection was logged, or no client error was reported: " + string.Join(" | ", logger.Messages));
                    await Task.Delay(50);
                }
            }
        });
    }
}
