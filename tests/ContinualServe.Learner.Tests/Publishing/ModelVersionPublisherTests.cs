using System.Diagnostics;
using ContinualServe.Learner.Publishing;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Publishing;

public sealed class ModelVersionPublisherTests
{
    [Fact(Timeout = 60_000)]
    public async Task StopWithBrokerDownWaitsOnce()
    {
        await Task.Run(() =>
        {
            // Port 1, where nothing listens. A port released by the test itself could be taken by another test's broker.
            var publisher = new ModelVersionPublisher("127.0.0.1:1", new DistributionOptions(), NullLogger<ModelVersionPublisher>.Instance);
            publisher.PublishPin("fashion-mnist", pinned: null);

            publisher.Flush(TimeSpan.FromSeconds(1)).ShouldBe(1);
            long disposing = Stopwatch.GetTimestamp();
            publisher.Dispose();

            // A second wait for the same announcement in Dispose would take 5 s.
            Stopwatch.GetElapsedTime(disposing).ShouldBeLessThan(TimeSpan.FromSeconds(3));
        });
    }
}
