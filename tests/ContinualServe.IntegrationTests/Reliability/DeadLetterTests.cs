using System.Globalization;
using System.Text;
using Confluent.Kafka;
using ContinualServe.Learner;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Model.Telemetry;
using Shouldly;
using Xunit;

namespace ContinualServe.IntegrationTests.Reliability;

/// <summary>Every kind of unusable record goes to the dead-letter topic with its reason, and the learner goes on.</summary>
public sealed class DeadLetterTests
{
    private const string Topic = "dead-letter-test";

    [Fact]
    public async Task EachBadRecordKindIsDeadLettered()
    {
        string valid = Encoding.UTF8.GetString(ExampleRecordCodec.Encode("good-0", 1, 0, LearnerFixture.Training.Image(0)));
        string features = string.Join(",", Enumerable.Repeat("1", 784));
        (string Value, string Reason)[] bad =
        [
            ("{\"id\":\"a\",\"task\":1,", "malformed JSON"),
            ("{\"task\":1,\"label\":0,\"features\":[" + features + "]}", "field 'id' is missing"),
            ("{\"id\":\"c\",\"task\":1,\"label\":0,\"features\":[1,2,3]}", "field 'features' has 3 values; expected 784"),
            ("{\"id\":\"d\",\"task\":1,\"label\":12,\"features\":[" + features + "]}", "field 'label' is 12, outside 0..9"),
            ("{\"id\":\"e\",\"task\":1,\"label\":0,\"features\":[1e39," + string.Join(",", Enumerable.Repeat("1", 783)) + "]}", "field 'features' item 0 is 1E+39, outside the FP32 range"),
            (valid[..^1] + ",\"padding\":\"" + new string('x', 9000) + "\"}", "the limit is 8192"),
        ];
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, 1);
        broker.CreateTopic(Topic + ".dlq", 1);
        using (IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            foreach ((string value, _) in bad)
            {
                await producer.ProduceAsync(Topic, new Message<string, string> { Key = "k", Value = value });
                await producer.ProduceAsync(Topic, new Message<string, string> { Key = "k", Value = valid });
            }
        }

        double invalidBefore = ContinualServeMetrics.LearnerExamples.WithLabels("invalid").Value;
        LearnerOptions options = LearnerFixture.Options(broker.BootstrapServers, Topic, LearnerFixture.TemporaryRoot());
        options.MaxRecordBytes = 8192;
        using (ContinualLearner learner = LearnerFixture.Create(options))
        {
            learner.Start();
            (await LearnerFixture.WaitUntilAsync(() => LearnerFixture.CheckpointOffset(learner) == 2 * bad.Length, TimeSpan.FromSeconds(30)))
                .ShouldBeTrue($"the learner stopped at {learner.Status.Consumed} records");
            learner.Status.Invalid.ShouldBe(bad.Length);
            learner.Status.IsRunning.ShouldBeTrue();
        }

        (ContinualServeMetrics.LearnerExamples.WithLabels("invalid").Value - invalidBefore).ShouldBe(bad.Length);
        List<ConsumeResult<byte[], byte[]>> letters = ReadDeadLetters(broker.BootstrapServers, bad.Length);
        letters.Count.ShouldBe(bad.Length);
        for (int index = 0; index < bad.Length; index++)
        {
            Headers headers = letters[index].Message.Headers;
            Header(headers, DeadLetterPublisher.ReasonHeader).ShouldContain(bad[index].Reason);
            Header(headers, DeadLetterPublisher.SourceTopicHeader).ShouldBe(Topic);
            Header(headers, DeadLetterPublisher.SourcePartitionHeader).ShouldBe("0");
            Header(headers, DeadLetterPublisher.SourceOffsetHeader).ShouldBe((2 * index).ToString(CultureInfo.InvariantCulture));
            Encoding.UTF8.GetString(letters[index].Message.Value).ShouldBe(bad[index].Value);
        }
    }

    private static List<ConsumeResult<byte[], byte[]>> ReadDeadLetters(string bootstrapServers, int expected)
    {
        using IConsumer<byte[], byte[]> consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "dead-letter-reader",
            FetchWaitMaxMs = 10,
        }).Build();
        consumer.Assign(new TopicPartitionOffset(Topic + ".dlq", 0, Offset.Beginning));
        var letters = new List<ConsumeResult<byte[], byte[]>>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (letters.Count < expected && DateTime.UtcNow < deadline)
        {
            ConsumeResult<byte[], byte[]>? result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is not null)
            {
                letters.Add(result);
            }
        }

        return letters;
    }

    private static string Header(Headers headers, string name) => Encoding.UTF8.GetString(headers.GetLastBytes(name));
}
