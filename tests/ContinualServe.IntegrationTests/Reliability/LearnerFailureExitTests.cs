using Confluent.Kafka;
using ContinualServe.IntegrationTests.Distribution;
using ContinualServe.Learner;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.IntegrationTests.Reliability;

/// <summary>
/// <c>continualserve all</c> as a child process whose learner fails mid-run: the process stops in order with exit code 1,
/// which an orchestrator restarts, instead of dying on an unhandled exception. A learner that cannot start because
/// another one runs on its store, or because its checkpoint belongs to another topic, exits with code 2, as for invalid
/// configuration.
/// </summary>
public sealed class LearnerFailureExitTests
{
    [Fact(Timeout = 150_000)]
    public async Task FailedLearnerStopsProcessWithExitOne()
    {
        using var temporary = new TemporaryDirectory();
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(ReplicaDistributionTests.ExampleTopic, 1);
        broker.CreateTopic(ReplicaDistributionTests.ExampleTopic + ".dlq", 1);
        broker.CreateTopic("model-versions", 1);
        string checkpoints = Path.Combine(temporary.Path, "checkpoints");

        (ContinualServeProcess started, _) = await ContinualServeProcess.StartOnAnyPortAsync("all", temporary.Path, "http", url =>
        [
            "all", "--urls", url, "--bootstrap-servers", broker.BootstrapServers, "--topic", ReplicaDistributionTests.ExampleTopic,
            "--store", Path.Combine(temporary.Path, "models"), "--checkpoint-dir", checkpoints, "--device", "cpu",
            "--Learner:IdleRoundDelay=00:00:00.300",
        ]);
        await using ContinualServeProcess all = started;
        DateTime deadline = DateTime.UtcNow.AddSeconds(60);
        while (!Directory.Exists(checkpoints) || !all.OutputTail.Contains("Learner starting on topic", StringComparison.Ordinal))
        {
            all.HasExited.ShouldBeFalse(all.OutputTail);
            DateTime.UtcNow.ShouldBeLessThan(deadline, "the all role did not start: " + all.OutputTail);
            await Task.Delay(200);
        }

        Directory.Delete(checkpoints, recursive: true);
        await File.WriteAllTextAsync(Path.Combine(temporary.Path, "checkpoints"), "a file where the checkpoint directory was");
        await ReplicaDistributionTests.ProduceTaskAsync(broker.BootstrapServers);

        int exitCode = await all.WaitForExitAsync(TimeSpan.FromSeconds(60));

        exitCode.ShouldBe(1, all.OutputTail);
        all.OutputTail.ShouldContain("The learner stopped on an error it does not handle");
        all.OutputTail.ShouldContain("The process stopped because the learner failed: ");
        all.OutputTail.ShouldNotContain("Unhandled exception");
    }

    [Fact(Timeout = 150_000)]
    public async Task SecondLearnerOnStoreExitsWithTwo()
    {
        using var temporary = new TemporaryDirectory();
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(ReplicaDistributionTests.ExampleTopic, 1);
        broker.CreateTopic(ReplicaDistributionTests.ExampleTopic + ".dlq", 1);
        broker.CreateTopic("model-versions", 1);
        string store = Path.Combine(temporary.Path, "models");
        string[] LearnerArguments(string role, string url) =>
        [
            role, "--urls", url, "--bootstrap-servers", broker.BootstrapServers, "--topic", ReplicaDistributionTests.ExampleTopic,
            "--store", store, "--device", "cpu",
        ];

        (ContinualServeProcess started, _) = await ContinualServeProcess.StartOnAnyPortAsync("all", temporary.Path, "http", url => LearnerArguments("all", url));
        await using ContinualServeProcess all = started;
        DateTime deadline = DateTime.UtcNow.AddSeconds(60);
        while (!all.OutputTail.Contains("Learner starting on topic", StringComparison.Ordinal))
        {
            all.HasExited.ShouldBeFalse(all.OutputTail);
            DateTime.UtcNow.ShouldBeLessThan(deadline, "the all role did not start: " + all.OutputTail);
            await Task.Delay(200);
        }

        await using ContinualServeProcess second = ContinualServeProcess.Start("learn", temporary.Path, LearnerArguments("learn", "http://127.0.0.1:0"));
        int exitCode = await second.WaitForExitAsync(TimeSpan.FromSeconds(60));

        exitCode.ShouldBe(2, second.OutputTail);
        second.OutputTail.ShouldContain("Another learner is running on the model store");
        second.OutputTail.ShouldContain(".learner.lock");
        all.HasExited.ShouldBeFalse("the running learner stopped: " + all.OutputTail);
    }

    [Fact(Timeout = 150_000)]
    public async Task RecreatedTopicExitsWithTwo()
    {
        const string topic = ReplicaDistributionTests.ExampleTopic;
        using var temporary = new TemporaryDirectory();
        string store;
        using (EmbeddedKafkaBroker first = LearnerFixture.StartBroker(topic))
        {
            await ProduceAsync(first.BootstrapServers, topic, 40, "first");
            LearnerOptions options = LearnerFixture.Options(first.BootstrapServers, topic, temporary.Path);
            store = options.StoreDirectory;
            using ContinualLearner learner = LearnerFixture.Create(options);
            learner.Start();
            (await LearnerFixture.WaitUntilAsync(() => LearnerFixture.CheckpointOffset(learner) == 40, TimeSpan.FromSeconds(30)))
                .ShouldBeTrue("the first learner did not checkpoint offset 40");
        }

        // The embedded broker keeps nothing, so a second one plays a topic deleted and created again with more records.
        using EmbeddedKafkaBroker second = LearnerFixture.StartBroker(topic);
        second.CreateTopic("model-versions", 1);
        await ProduceAsync(second.BootstrapServers, topic, 100, "second");
        await using ContinualServeProcess learn = ContinualServeProcess.Start("learn", temporary.Path,
        [
            "learn", "--urls", "http://127.0.0.1:0", "--bootstrap-servers", second.BootstrapServers, "--topic", topic,
            "--store", store, "--device", "cpu",
        ]);
        int exitCode = await learn.WaitForExitAsync(TimeSpan.FromSeconds(60));

        exitCode.ShouldBe(2, learn.OutputTail);
        learn.OutputTail.ShouldContain("is not the one that learner checkpoint");
        learn.OutputTail.ShouldContain("Learner:OnTopicMismatch=ResetToEarliest");
    }

    private static async Task ProduceAsync(string bootstrapServers, string topic, int count, string prefix)
    {
        using IProducer<string, byte[]> producer = new ProducerBuilder<string, byte[]>(KafkaDefaults.CreateProducerConfig(bootstrapServers)).Build();
        for (int index = 0; index < count; index++)
        {
            string id = $"{prefix}-{index}";
            byte[] record = ExampleRecordCodec.Encode(id, 1, LearnerFixture.Training.Labels[index], LearnerFixture.Training.Image(index));
            await producer.ProduceAsync(topic, new Message<string, byte[]> { Key = id, Value = record });
        }
    }
}
