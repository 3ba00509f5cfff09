using ContinualServe.Learner.Training;
using ContinualServe.Model;
using Shouldly;

namespace ContinualServe.Learner.Tests;

/// <summary>Settings and waits shared by the tests that run a <see cref="ContinualLearner"/> against the embedded broker.</summary>
internal static class LearnerHarness
{
    public static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Options for a small, fast learner: a one-hidden-layer MLP on the CPU, a 3 s session and a round only when
    /// the stream goes idle for 500 ms.
    /// </summary>
    public static LearnerOptions Options(string bootstrapServers, string topic, string groupId, string storeDirectory, TrainerOptions trainer, int hiddenSize) => new()
    {
        BootstrapServers = bootstrapServers,
        Topic = topic,
        GroupId = groupId,
        StoreDirectory = storeDirectory,
        SessionTimeout = TimeSpan.FromSeconds(3),
        RoundExamples = 1_000_000,
        IdleRoundDelay = TimeSpan.FromMilliseconds(500),
        Device = "cpu",
        InitialSpec = new ModelSpec { InputShape = [784], HiddenSizes = [hiddenSize] },
        Trainer = trainer,
    };

    /// <summary>Polls <paramref name="condition"/> every 100 ms and fails the test after <see cref="WaitLimit"/>.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition)
    {
        DateTime deadline = DateTime.UtcNow + WaitLimit;
        while (!condition())
        {
            DateTime.UtcNow.ShouldBeLessThan(deadline, "the learner did not reach the expected state in time");
            await Task.Delay(100);
        }
    }
}
