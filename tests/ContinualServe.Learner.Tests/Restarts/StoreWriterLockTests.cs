using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Restarts;

/// <summary>A second learner on a store that a running learner writes fails at its start and changes nothing.</summary>
public sealed class StoreWriterLockTests : IDisposable
{
    private const string Topic = "store-lock-examples";

    private readonly TemporaryDirectory storeDirectory = new("continualserve-store-lock-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task SecondLearnerOnStoreFails()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            using var first = new ContinualLearner(Options(broker.BootstrapServers, "first-group"), NullLoggerFactory.Instance);
            first.Start();
            await LearnerHarness.WaitUntilAsync(() => first.IsReady, "the first learner did not become ready");

            // A temporary version as the first learner's round write leaves it while it runs.
            string temporary = Path.Combine(storeDirectory.Path, ".tmp-in-progress");
            Directory.CreateDirectory(temporary);

            using var second = new ContinualLearner(Options(broker.BootstrapServers, "second-group"), NullLoggerFactory.Instance);
            StoreInUseException failure = Should.Throw<StoreInUseException>(() => second.Start());
            failure.Message.ShouldContain(storeDirectory.Path);
            failure.Message.ShouldContain(StoreWriterLock.FileName);
            ReadLockFile().ShouldStartWith($"process {Environment.ProcessId} on host ");
            Directory.Exists(temporary).ShouldBeTrue("the second learner removed the running learner's temporary version");
            second.HasStopped.ShouldBeFalse("the second learner started its thread");

            first.Stop(TimeSpan.FromSeconds(10)).ShouldBeTrue();
            using var third = new ContinualLearner(Options(broker.BootstrapServers, "first-group"), NullLoggerFactory.Instance);
            third.Start().Number.ShouldBe(1);
            Directory.Exists(temporary).ShouldBeFalse("a learner that holds the lock removes temporary versions at its start");
            third.Stop(TimeSpan.FromSeconds(10)).ShouldBeTrue();
        });
    }

    // Reads the lock file as an operator does with cat. .NET's FileStream would take a shared flock and fail.
    private string ReadLockFile()
    {
        using var cat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("cat", Path.Combine(storeDirectory.Path, StoreWriterLock.FileName)) { RedirectStandardOutput = true })!;
        string text = cat.StandardOutput.ReadToEnd();
        cat.WaitForExit();
        return text;
    }

    [Fact(Timeout = 120_000)]
    public async Task SecondLearnerOnCheckpointsFails()
    {
        await Task.Run(async () =>
        {
            using var otherStore = new TemporaryDirectory("continualserve-store-lock-other-");
            string checkpoints = Path.Combine(storeDirectory.Path, "shared-checkpoints");
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions firstOptions = Options(broker.BootstrapServers, "first-group");
            firstOptions.Checkpoint.Directory = checkpoints;
            using var first = new ContinualLearner(firstOptions, NullLoggerFactory.Instance);
            first.Start();

            LearnerOptions secondOptions = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "second-group", otherStore.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            secondOptions.Checkpoint.Directory = checkpoints;
            using var second = new ContinualLearner(secondOptions, NullLoggerFactory.Instance);
            StoreInUseException failure = Should.Throw<StoreInUseException>(() => second.Start());
            failure.Message.ShouldContain("checkpoint directory '" + checkpoints + "'");

            // The second learner released the store lock it took before it failed, so a learner on its store starts.
            first.Stop(TimeSpan.FromSeconds(10)).ShouldBeTrue();
            using var third = new ContinualLearner(secondOptions, NullLoggerFactory.Instance);
            third.Start();
            third.Stop(TimeSpan.FromSeconds(10)).ShouldBeTrue();
        });
    }

    [Theory]
    [InlineData("model store")]
    [InlineData("checkpoint directory")]
    public void DirectoryAtLockPathIsNamed(string description)
    {
        string path = Path.Combine(storeDirectory.Path, StoreWriterLock.FileName);
        Directory.CreateDirectory(path);

        // Not an IOException, which the learner's host would report with advice about write permissions.
        IncompatibleStateException failure = Should.Throw<IncompatibleStateException>(() => StoreWriterLock.Acquire(storeDirectory.Path, description));

        failure.Message.ShouldStartWith($"The lock file '{path}' of the {description} '{storeDirectory.Path}' is a directory");
        failure.Message.ShouldContain("remove the directory, then start the learner again");
        Directory.Exists(path).ShouldBeTrue("the learner removed a directory that it did not create");
    }

    private LearnerOptions Options(string bootstrapServers, string groupId) =>
        LearnerHarness.Options(bootstrapServers, Topic, groupId, storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
}
