using ContinualServe.Learner.Replay;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Replay;

public sealed class ReservoirReplayBufferTests
{
    private const int StreamLength = 10_000;
    private const int Capacity = 500;
    private const int Fifths = 5;
    private const int FifthLength = StreamLength / Fifths;

    // Each slot contains an id from a given fifth with p = 1/5, so a fifth's count is close to
    // Binomial(500, 1/5): mean 100, standard deviation sqrt(500 * 0.2 * 0.8) ≈ 8.94.
    private const double ExpectedPerFifth = Capacity / (double)Fifths;
    private const double StandardDeviationPerFifth = 8.94;

    [Fact]
    public void ReservoirKeepsEachFifthFairly()
    {
        int[] counts = CountPerFifth(seed: 7);

        for (int fifth = 0; fifth < Fifths; fifth++)
        {
            counts[fifth].ShouldBeInRange(65, 135, $"fifth {fifth} of the stream");
        }
    }

    [Fact]
    public void ReservoirMeanOverSeedsIsFair()
    {
        const int seedCount = 20;
        var totals = new double[Fifths];
        for (int seed = 1; seed <= seedCount; seed++)
        {
            int[] counts = CountPerFifth(seed);
            for (int fifth = 0; fifth < Fifths; fifth++)
            {
                totals[fifth] += counts[fifth];
            }
        }

        // The mean of 20 runs has standard deviation 8.94 / sqrt(20) ≈ 2.0, so the tolerance is 4 of them.
        double tolerance = 4 * StandardDeviationPerFifth / Math.Sqrt(seedCount);
        for (int fifth = 0; fifth < Fifths; fifth++)
        {
            (totals[fifth] / seedCount).ShouldBe(ExpectedPerFifth, tolerance, $"fifth {fifth} of the stream");
        }
    }

    [Fact]
    public void ReservoirSameSeedSameContent()
    {
        ReservoirReplayBuffer first = Fill(seed: 3, StreamLength);
        ReservoirReplayBuffer second = Fill(seed: 3, StreamLength);

        second.Examples.Select(example => example.Id).ToArray().ShouldBe(first.Examples.Select(example => example.Id).ToArray());
    }

    [Fact]
    public void ReservoirStoresFirstExamplesWhileFilling()
    {
        var buffer = new ReservoirReplayBuffer(Capacity, seed: 1);

        for (int index = 0; index < Capacity; index++)
        {
            buffer.Offer(Example(index)).ShouldBeTrue($"offer {index} while the buffer is not full");
        }

        buffer.Count.ShouldBe(Capacity);
        buffer.Examples.Select(example => example.Id).ToArray().ShouldBe(Enumerable.Range(0, Capacity).Select(Id).ToArray());
    }

    [Fact]
    public void ZeroCapacityStoresNothing()
    {
        var buffer = new ReservoirReplayBuffer(0, seed: 1);

        for (int index = 0; index < 100; index++)
        {
            buffer.Offer(Example(index)).ShouldBeFalse();
        }

        buffer.Count.ShouldBe(0);
        buffer.Examples.Count.ShouldBe(0);
        buffer.Seen.ShouldBe(100);
        buffer.Sample(8).Count.ShouldBe(0);
    }

    [Fact]
    public void CountNeverExceedsCapacity()
    {
        var buffer = new ReservoirReplayBuffer(50, seed: 1);

        for (int index = 0; index < 1_000; index++)
        {
            buffer.Offer(Example(index));
            buffer.Count.ShouldBe(Math.Min(index + 1, 50));
        }
    }

    [Fact]
    public void SeenCountsEveryOffer()
    {
        ReservoirReplayBuffer buffer = Fill(seed: 5, count: 1_234);

        buffer.Seen.ShouldBe(1_234);
    }

    [Fact]
    public void NegativeCapacityThrows()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new ReservoirReplayBuffer(-1, seed: 1));
    }

    [Fact]
    public void SampleDrawsStoredExamples()
    {
        ReservoirReplayBuffer buffer = Fill(seed: 2, count: 200);
        var stored = buffer.Examples.Select(example => example.Id).ToHashSet();

        IReadOnlyList<ReplayExample> sample = buffer.Sample(64);

        sample.Count.ShouldBe(64);
        foreach (ReplayExample example in sample)
        {
            stored.ShouldContain(example.Id);
        }
    }

    [Fact]
    public void SampleOfEmptyBufferIsEmpty()
    {
        var buffer = new ReservoirReplayBuffer(10, seed: 1);

        buffer.Sample(5).Count.ShouldBe(0);
    }

    private static int[] CountPerFifth(int seed)
    {
        ReservoirReplayBuffer buffer = Fill(seed, StreamLength);
        buffer.Count.ShouldBe(Capacity);

        var counts = new int[Fifths];
        foreach (ReplayExample example in buffer.Examples)
        {
            int index = int.Parse(example.Id.AsSpan("stream-".Length), System.Globalization.CultureInfo.InvariantCulture);
            counts[index / FifthLength]++;
        }

        return counts;
    }

    private static ReservoirReplayBuffer Fill(int seed, int count)
    {
        var buffer = new ReservoirReplayBuffer(Capacity, seed);
        for (int index = 0; index < count; index++)
        {
            buffer.Offer(Example(index));
        }

        return buffer;
    }

    private static string Id(int index) => "stream-" + index.ToString("D5", System.Globalization.CultureInfo.InvariantCulture);

    private static ReplayExample Example(int index) => new(Id(index), Task: 1, Label: 0, Features: [], Logits: []);
}
