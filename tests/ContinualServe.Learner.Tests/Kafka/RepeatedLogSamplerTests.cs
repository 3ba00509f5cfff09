using ContinualServe.Learner.Kafka;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Kafka;

public sealed class RepeatedLogSamplerTests
{
    [Fact]
    public void LogsFirstTenThenEveryHundredth()
    {
        var sampler = new RepeatedLogSampler();

        var logged = new List<long>();
        for (int occurrence = 1; occurrence <= 1_000; occurrence++)
        {
            if (sampler.Count(out long count))
            {
                logged.Add(count);
            }
        }

        long[] expected = [.. Enumerable.Range(1, 10).Select(count => (long)count), .. Enumerable.Range(1, 10).Select(hundreds => hundreds * 100L)];
        logged.ShouldBe(expected);
        sampler.Occurrences.ShouldBe(1_000);
    }

    [Theory]
    [InlineData(10, true)]
    [InlineData(11, false)]
    [InlineData(99, false)]
    [InlineData(100, true)]
    [InlineData(101, false)]
    [InlineData(200, true)]
    public void OccurrenceIsLoggedByItsNumber(int occurrence, bool expected)
    {
        var sampler = new RepeatedLogSampler();
        for (int earlier = 1; earlier < occurrence; earlier++)
        {
            sampler.Count();
        }

        sampler.Count(out long count).ShouldBe(expected);
        count.ShouldBe(occurrence);
    }

    [Fact(Timeout = 30_000)]
    public async Task CountsFromManyThreads()
    {
        var sampler = new RepeatedLogSampler();
        int logged = 0;

        Task[] workers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            for (int occurrence = 0; occurrence < 2_500; occurrence++)
            {
                if (sampler.Count())
                {
                    Interlocked.Increment(ref logged);
                }
            }
        })).ToArray();
        await Task.WhenAll(workers);

        sampler.Occurrences.ShouldBe(10_000);
        // The first 10 and the 100 multiples of 100 up to 10,000.
        logged.ShouldBe(110);
    }
}
