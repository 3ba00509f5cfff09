using ContinualServe.Learner.Replay;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Replay;

public sealed class ClassBalancedReplayBufferTests
{
    [Fact]
    public void BalancedAfterClassIncrementalStream()
    {
        var buffer = new ClassBalancedReplayBuffer(capacity: 100, seed: 1);

        // 2,000 examples of classes 0 and 1, then 200 of class 2: a reservoir would keep about 9 of class 2.
        for (int index = 0; index < 2000; index++)
        {
            buffer.Offer(Example(index, label: index % 2));
        }

        for (int index = 0; index < 200; index++)
        {
            buffer.Offer(Example(2000 + index, label: 2));
        }

        buffer.Count.ShouldBe(100);
        buffer.Seen.ShouldBe(2200);
        IReadOnlyDictionary<int, int> counts = buffer.CountByClass;
        counts[0].ShouldBeInRange(33, 34);
        counts[1].ShouldBeInRange(33, 34);
        counts[2].ShouldBeInRange(33, 34);
        buffer.Examples.Count(example => example.Label == 2).ShouldBe(counts[2]);
    }

    [Fact]
    public void StoresEveryExampleWhileFilling()
    {
        var buffer = new ClassBalancedReplayBuffer(capacity: 10, seed: 1);

        for (int index = 0; index < 10; index++)
        {
            buffer.Offer(Example(index, label: 0)).ShouldBeTrue();
        }

        buffer.Examples.Select(example => example.Id).ShouldBe(Enumerable.Range(0, 10).Select(index => $"e{index}"));
    }

    [Fact]
    public void LargestClassSamplesUniformly()
    {
        // One class only: the buffer is a reservoir over that class, so early and late examples are kept alike.
        int earlyKept = 0;
        for (int seed = 0; seed < 20; seed++)
        {
            var buffer = new ClassBalancedReplayBuffer(capacity: 50, seed: seed);
            for (int index = 0; index < 1000; index++)
            {
                buffer.Offer(Example(index, label: 0));
            }

            earlyKept += buffer.Examples.Count(example => int.Parse(example.Id[1..], System.Globalization.CultureInfo.InvariantCulture) < 500);
        }

        // 20 buffers of 50 slots: 500 expected from the first half, standard deviation about 16.
        earlyKept.ShouldBeInRange(420, 580);
    }

    [Fact]
    public void ZeroCapacityStoresNothing()
    {
        var buffer = new ClassBalancedReplayBuffer(capacity: 0, seed: 1);

        buffer.Offer(Example(0, label: 0)).ShouldBeFalse();

        buffer.Count.ShouldBe(0);
        buffer.Seen.ShouldBe(1);
        buffer.Sample(4).ShouldBeEmpty();
    }

    [Fact]
    public void FactoryBuildsEachKind()
    {
        ReplayBuffers.Create(ReplayBufferKind.Reservoir, 5, 1).ShouldBeOfType<ReservoirReplayBuffer>();
        ReplayBuffers.Create(ReplayBufferKind.ClassBalanced, 5, 1).ShouldBeOfType<ClassBalancedReplayBuffer>();
    }

    [Fact]
    public void RestoreKeepsSeenCountsPerClass()
    {
        var original = new ClassBalancedReplayBuffer(capacity: 20, seed: 1);
        for (int index = 0; index < 1000; index++)
        {
            original.Offer(Example(index, label: index % 2));
        }

        var restored = new ClassBalancedReplayBuffer(capacity: 20, seed: 2);
        restored.Restore(original.Examples, original.Seen, original.SeenByClass);

        restored.SeenByClass[0].ShouldBe(500);
        restored.SeenByClass[1].ShouldBe(500);
        restored.Seen.ShouldBe(1000);
        restored.CountByClass.ShouldBe(original.CountByClass);
    }

    [Fact]
    public void RestoredCountsKeepWithinClassSamplingUniform()
    {
        // After 1,000 examples of one class, the next 1,000 should replace about half of the 50 slots. A buffer
        // restored without its seen count (it would assume 50) would replace nearly all of them.
        int replacedWithCounts = 0;
        int replacedWithoutCounts = 0;
        for (int seed = 0; seed < 10; seed++)
        {
            var original = new ClassBalancedReplayBuffer(capacity: 50, seed: seed);
            for (int index = 0; index < 1000; index++)
            {
                original.Offer(Example(index, label: 0));
            }

            var withCounts = new ClassBalancedReplayBuffer(capacity: 50, seed: seed);
            withCounts.Restore(original.Examples, original.Seen, original.SeenByClass);
            var withoutCounts = new ClassBalancedReplayBuffer(capacity: 50, seed: seed);
            withoutCounts.Restore(original.Examples, original.Seen);
            for (int index = 1000; index < 2000; index++)
            {
                withCounts.Offer(Example(index, label: 0));
                withoutCounts.Offer(Example(index, label: 0));
            }

            replacedWithCounts += withCounts.Examples.Count(example => int.Parse(example.Id[1..], System.Globalization.CultureInfo.InvariantCulture) >= 1000);
            replacedWithoutCounts += withoutCounts.Examples.Count(example => int.Parse(example.Id[1..], System.Globalization.CultureInfo.InvariantCulture) >= 1000);
        }

        // 10 buffers of 50 slots: about 250 new examples expected with the counts, about 480 without.
        replacedWithCounts.ShouldBeInRange(200, 300);
        replacedWithoutCounts.ShouldBeGreaterThan(400);
    }

    private static ReplayExample Example(int index, int label) => new($"e{index}", label / 2 + 1, label, [index], [0f]);
}
