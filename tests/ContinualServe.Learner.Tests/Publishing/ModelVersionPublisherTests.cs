using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
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
            var publisher = new ModelVersionPublisher(
                $"127.0.0.1:{ClosedPort()}", new DistributionOptions(), NullLogger<ModelVersionPublisher>.Instance);
            publisher.PublishPin("fashion-mnist", pinned: null);

            publisher.Flush(TimeSpan.FromSeconds(1)).ShouldBe(1);
            long disposing = Stopwatch.GetTimestamp();
            publisher.Dispose();

            // A second wait for the same announcement in Dispose would take 5 s.
            Stopwatch.GetElapsedTime(disposing).ShouldBeLessThan(TimeSpan.FromSeconds(3));
        });
    }

    // A port nothing listens on: bound once by the system's choice, then released.
    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
