using ContinualServe.Learner;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.IntegrationTests.Reliability;

/// <summary>Training that keeps producing non-finite losses is rolled back and never published.</summary>
public sealed class DivergenceTests
{
    [Fact]
    public async Task DivergedTrainingIsRolledBackNotPublished()
    {
        const string topic = "divergence-test";
        using EmbeddedKafkaBroker broker = LearnerFixture.StartBroker(topic);
        var producer = new ExampleProducer(broker.BootstrapServers, topic, NullLogger.Instance) { MaxLag = 0, MaxTasks = 1 };
        await producer.ProduceAsync(LearnerFixture.Training, null, null, CancellationToken.None);
        LearnerOptions options = LearnerFixture.Options(broker.BootstrapServers, topic, LearnerFixture.TemporaryRoot());

        // Adam's first update moves every weight by about the learning rate, so later losses are not finite.
        options.Trainer.LearningRate = 1e30;
        options.Trainer.GradientClipNorm = 0;
        using ContinualLearner learner = LearnerFixture.Create(options);
        learner.Start();

        (await LearnerFixture.WaitUntilAsync(() => learner.Status.IsDiverged, TimeSpan.FromSeconds(60)))
            .ShouldBeTrue($"rollbacks so far: {learner.Status.Rollbacks}");
        learner.Status.Rollbacks.ShouldBe(options.Checkpoint.MaxRollbacks + 1);
        learner.IsReady.ShouldBeFalse();
        StoreControlFiles.IsLearningPaused(options.StoreDirectory).ShouldBeTrue();
        learner.Store.ListVersionNumbers().ShouldBe([1L]);
    }
}
