using Confluent.Kafka;
using Confluent.Kafka.Admin;
using ContinualServe.Learner.Kafka;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner.Publishing;

/// <summary>
/// Announces promoted versions on the compacted version topic. Sends are asynchronous and retried by the
/// producer. A failed announcement is logged, and the next promotion supersedes it because replicas always
/// move to the newest announced version.
/// </summary>
public sealed partial class ModelVersionPublisher : IDisposable
{
    private readonly IProducer<string, byte[]> producer;
    private readonly string topic;
    private readonly string storeUrl;
    private readonly ILogger logger;
    private readonly KafkaClientProperties kafkaProperties;
    private bool flushGaveUp;

    public ModelVersionPublisher(
        string bootstrapServers, DistributionOptions options, ILogger<ModelVersionPublisher> logger, KafkaClientProperties? kafkaProperties = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        BootstrapServers = bootstrapServers;
        this.kafkaProperties = kafkaProperties ?? KafkaClientProperties.None;
        topic = options.Topic;
        storeUrl = options.StoreUrl ?? "";
        this.logger = logger;
        var clientLog = new KafkaClientLog(logger);
        producer = new ProducerBuilder<string, byte[]>(this.kafkaProperties.ApplyTo(KafkaDefaults.CreateProducerConfig(bootstrapServers)))
            .SetLogHandler(clientLog.OnLog)
            .SetErrorHandler(clientLog.OnError)
            .Build();
    }

    public string BootstrapServers { get; }

    /// <summary>
    /// Creates the version topic with cleanup.policy=compact when metadata shows it does not exist. Failures are
    /// logged and not thrown, because a broker that auto-creates topics, or an operator who created it, still works.
    /// </summary>
    // NOTE: librdkafka's mock cluster cannot create topics through the admin API and does not compact. The tests
    // therefore create the topic beforehand and catch up from its full history, and CreateTopics is untested.
    public async Task EnsureTopicAsync(DistributionOptions options, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(options);
        var clientLog = new KafkaClientLog(logger);
        using IAdminClient admin = new AdminClientBuilder(kafkaProperties.ApplyTo(new AdminClientConfig { BootstrapServers = BootstrapServers }))
            .SetLogHandler(clientLog.OnLog)
            .SetErrorHandler(clientLog.OnError)
            .Build();
        if (TopicExists(admin))
        {
            return;
        }

        var specification = new TopicSpecification
        {
            Name = topic,
            NumPartitions = options.TopicPartitions,
            ReplicationFactor = options.TopicReplicationFactor,
            Configs = new Dictionary<string, string> { ["cleanup.policy"] = "compact" },
        };
        try
        {
            await admin.CreateTopicsAsync([specification], new CreateTopicsOptions { RequestTimeout = TimeSpan.FromSeconds(10) })
                .WaitAsync(cancellation)
                .ConfigureAwait(false);
            LogTopicCreated(logger, topic);
        }
        catch (CreateTopicsException exception) when (exception.Results.All(result => result.Error.Code == ErrorCode.TopicAlreadyExists))
        {
            // Created earlier by this learner or by the operator.
        }
        catch (KafkaException exception)
        {
            LogTopicNotCreated(logger, topic, exception.Error.Code, exception.Error.Reason);
        }
    }

    private bool TopicExists(IAdminClient admin)
    {
        try
        {
            // Metadata of all topics: a request that names the topic could make the broker auto-create it uncompacted.
            TopicMetadata? metadata = admin.GetMetadata(TimeSpan.FromSeconds(5)).Topics
                .FirstOrDefault(candidate => candidate.Topic == topic);
            return metadata is not null && metadata.Error.Code == ErrorCode.NoError && metadata.Partitions.Count > 0;
        }
        catch (KafkaException exception)
        {
            LogTopicNotCreated(logger, topic, exception.Error.Code, exception.Error.Reason);
            return false;
        }
    }

    /// <summary>Announces <paramref name="version"/>; the store URL configured for this learner goes with it.</summary>
    public void Publish(ModelVersion version) => Publish(ModelVersionAnnouncement.From(version, storeUrl));

    /// <summary>
    /// Announces <paramref name="version"/> with the store URL configured for this learner and
    /// <paramref name="highestSavedVersion"/>, the highest version number of the learner's store.
    /// </summary>
    public void Publish(ModelVersion version, long highestSavedVersion) =>
        Publish(ModelVersionAnnouncement.From(version, storeUrl, highestSavedVersion));

    public void Publish(ModelVersionAnnouncement announcement)
    {
        ArgumentNullException.ThrowIfNull(announcement);
        var message = new Message<string, byte[]> { Key = announcement.ModelName, Value = announcement.ToJsonBytes() };
        producer.Produce(topic, message, report =>
        {
            if (report.Error.IsError)
            {
                LogAnnounceFailed(logger, announcement.Version, topic, report.Error.Code, report.Error.Reason);
            }
            else
            {
                LogAnnounced(logger, announcement.Version, announcement.ModelName, report.TopicPartitionOffset);
            }
        });
    }

    /// <summary>
    /// Announces that <paramref name="pinned"/> is pinned, or that no version is pinned when it is null. Returns once the
    /// record is queued. A failed send is logged, and the learner announces the pin again at its next start.
    /// </summary>
    public void PublishPin(string modelName, ModelVersion? pinned)
    {
        ModelPinAnnouncement pin = ModelPinAnnouncement.From(modelName, pinned, storeUrl);
        var message = new Message<string, byte[]> { Key = modelName + ModelPinAnnouncement.KeySuffix, Value = pin.ToJsonBytes() };
        long? version = pinned?.Number;
        producer.Produce(topic, message, report =>
        {
            if (report.Error.IsError)
            {
                LogPinAnnounceFailed(logger, topic, report.Error.Code, report.Error.Reason);
            }
            else if (version is null)
            {
                LogUnpinAnnounced(logger, modelName, report.TopicPartitionOffset);
            }
            else
            {
                LogPinAnnounced(logger, version.Value, modelName, report.TopicPartitionOffset);
            }
        });
    }

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for outstanding announcements to be delivered and returns how many are
    /// still undelivered. When some are, <see cref="Dispose"/> does not wait for them again.
    /// </summary>
    public int Flush(TimeSpan timeout)
    {
        int undelivered = producer.Flush(timeout);
        flushGaveUp = undelivered > 0;
        if (flushGaveUp)
        {
            LogUndelivered(logger, undelivered, topic, timeout.TotalSeconds);
        }

        return undelivered;
    }

    /// <summary>
    /// Waits up to 5 s for outstanding announcements, unless the last <see cref="Flush"/> already gave up on them
    /// (a broker that is down would make a stop wait twice), and closes the producer.
    /// </summary>
    public void Dispose()
    {
        if (!flushGaveUp)
        {
            Flush(TimeSpan.FromSeconds(5));
        }

        producer.Dispose();
    }

    // The learner announces its newest version again when it starts, so replicas catch up on what was lost here.
    [LoggerMessage(EventId = 260, Level = LogLevel.Warning, Message = "{Count} announcements on {Topic} were not delivered within {Seconds} s; replicas learn of the newest version when the learner next starts or publishes")]
    private static partial void LogUndelivered(ILogger logger, int count, string topic, double seconds);

    [LoggerMessage(EventId = 250, Level = LogLevel.Information, Message = "Created compacted version topic {Topic}")]
    private static partial void LogTopicCreated(ILogger logger, string topic);

    // Logged without the exception: a broker that is down is expected here, and its stack trace adds nothing to the reason.
    [LoggerMessage(EventId = 251, Level = LogLevel.Warning, Message = "Could not create version topic {Topic} ({Code}: {Reason}); relying on the broker or the operator to create it")]
    private static partial void LogTopicNotCreated(ILogger logger, string topic, ErrorCode code, string reason);

    [LoggerMessage(EventId = 252, Level = LogLevel.Information, Message = "Announced version {Version} of {Model} at {Offset}")]
    private static partial void LogAnnounced(ILogger logger, long version, string model, TopicPartitionOffset offset);

    [LoggerMessage(EventId = 257, Level = LogLevel.Information, Message = "Announced version {Version} of {Model} as pinned at {Offset}")]
    private static partial void LogPinAnnounced(ILogger logger, long version, string model, TopicPartitionOffset offset);

    [LoggerMessage(EventId = 259, Level = LogLevel.Information, Message = "Announced that no version of {Model} is pinned at {Offset}")]
    private static partial void LogUnpinAnnounced(ILogger logger, string model, TopicPartitionOffset offset);

    [LoggerMessage(EventId = 258, Level = LogLevel.Error, Message = "Announcing the pin on {Topic} failed: {Code} {Reason}. Replicas keep the previous pin until the pin changes again or the learner restarts")]
    private static partial void LogPinAnnounceFailed(ILogger logger, string topic, ErrorCode code, string reason);

    [LoggerMessage(EventId = 253, Level = LogLevel.Error, Message = "Announcing version {Version} on {Topic} failed: {Code} {Reason}. The next promotion supersedes it")]
    private static partial void LogAnnounceFailed(ILogger logger, long version, string topic, ErrorCode code, string reason);
}
