using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Kafka;

/// <summary>The extra librdkafka properties of <see cref="KafkaClientProperties"/> reach the clients a learner builds.</summary>
public sealed class LearnerKafkaPropertiesTests : IDisposable
{
    private const string Topic = "kafka-properties-examples";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-kafka-properties-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 90_000)]
    public async Task LearnerTrainsWithExtraProperties()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "properties");
            var logger = new RecordingLogger();

            // librdkafka writes debug lines only when the debug property requests them, and names each client by its client.id.
            KafkaClientProperties properties = KafkaClientProperties.Load(null, [new("client.id", "properties-test-learner"), new("debug", "cgrp")]);
            using (var learner = new ContinualLearner(Options(broker.BootstrapServers), new RecordingLoggerFactory(logger), properties))
            {
                learner.Start();
                await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100, "the learner did not read the topic");
                learner.Stop(TimeSpan.FromSeconds(10));
            }

            logger.Entries.ShouldContain(
                entry => entry.Level == LogLevel.Debug && entry.Message.StartsWith("librdkafka properties-test-learner#consumer-", StringComparison.Ordinal),
                "the learner's clients must run with the configured client.id and debug contexts");
        });
    }

    [Fact(Timeout = 90_000)]
    public async Task EveryClientOfTheLearnerAuthenticates()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "sasl");
            var logger = new RecordingLogger();

            // The embedded broker does not support SASL, so each client that takes the properties fails its handshake and names itself.
            KafkaClientProperties properties = KafkaClientProperties.Load(null,
            [
                new("security.protocol", "SASL_PLAINTEXT"), new("sasl.mechanism", "PLAIN"), new("sasl.username", "learner"), new("sasl.password", "secret"),
            ]);
            using var learner = new ContinualLearner(Options(broker.BootstrapServers), new RecordingLoggerFactory(logger), properties);
            learner.Start();
            await LearnerHarness.WaitUntilAsync(
                () => FailedHandshakes(logger).Count() == 3,
                "the broker checks, the consumer and the dead-letter producer must each try a SASL handshake");
            learner.Stop(TimeSpan.FromSeconds(10));

            FailedHandshakes(logger).Count(client => client.Contains("#consumer-", StringComparison.Ordinal)).ShouldBe(2);
            logger.Messages.ShouldContain(
                message => message.StartsWith("Kafka error Local_Authentication", StringComparison.Ordinal),
                "the learner's consumer must report the failed authentication through its error handler");
            learner.Status.Consumed.ShouldBe(0);
        });
    }

    // librdkafka rejects a max.poll.interval.ms shorter than session.timeout.ms. The broker watchdog's client takes the
    // learner's session timeout, so a value that the learner's consumer accepts does not stop the watchdog.
    [Fact(Timeout = 90_000)]
    public async Task ShortMaxPollIntervalStarts()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "max-poll");
            KafkaClientProperties properties = KafkaClientProperties.Load(null, [new("max.poll.interval.ms", "3000")]);
            using var learner = new ContinualLearner(Options(broker.BootstrapServers), new RecordingLoggerFactory(), properties);
            learner.Start();

            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100 || learner.Failure is not null, "the learner did not read the topic");
            learner.Failure.ShouldBeNull();
            learner.IsReady.ShouldBeTrue();
        });
    }

    // The names of the clients whose librdkafka log reports a failed SASL handshake.
    private static IEnumerable<string> FailedHandshakes(RecordingLogger logger) => logger.Messages
        .Where(message => message.StartsWith("librdkafka ", StringComparison.Ordinal) && message.Contains("Failed to initialize SASL", StringComparison.Ordinal))
        .Select(message => message.Split(' ')[1])
        .Distinct();

    private LearnerOptions Options(string bootstrapServers) => LearnerHarness.Options(
        bootstrapServers, Topic, "kafka-properties-test", storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
}
