using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>A replica's version subscriber stopped while it downloads a version from a store that stalls.</summary>
public sealed class SubscriberStopTests : IDisposable
{
    private readonly string root = Directory.CreateDirectory(
        Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"))).FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    // The download ends with the stop's OperationCanceledException, and the service must still wait for its topic
    // reader, so that the reader's consumer is closed before the host disposes the process's services.
    [Fact(Timeout = 90_000)]
    public async Task StopMidDownloadJoinsReader()
    {
        var source = new ModelStore(Path.Combine(root, "learner"));
        torch.manual_seed(5);
        using (nn.Module<Tensor, Tensor> module = Model.ModelFactory.Create(RunningServer.Spec))
        {
            source.Save(RunningServer.Spec, module, new ModelManifest());
        }

        var weightsRequested = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using WebApplication stalling = await StartStallingStoreAsync(source, weightsRequested);
        string storeUrl = stalling.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("model-versions", 1);
        using (var publisher = new ModelVersionPublisher(
            broker.BootstrapServers, new DistributionOptions { StoreUrl = storeUrl }, NullLogger<ModelVersionPublisher>.Instance))
        {
            source.TryLoad(1, out ModelVersion? version).ShouldBeTrue();
            publisher.Publish(version!);
            publisher.Flush(TimeSpan.FromSeconds(10)).ShouldBe(0);
        }

        using var live = new LiveModel();
        var serverOptions = Options.Create(new ServerOptions
        {
            ModelName = RunningServer.Spec.Name,
            StoreDirectory = Path.Combine(root, "replica"),
            Device = "cpu",
        });
        var swapper = new ModelSwapper(live, serverOptions, NullLogger<ModelSwapper>.Instance);
        using var subscriber = new ModelVersionSubscriber(
            Options.Create(new DistributionOptions { BootstrapServers = broker.BootstrapServers, DownloadTimeout = TimeSpan.FromMinutes(1) }),
            serverOptions,
            swapper,
            live,
            KafkaClientProperties.None,
            NullLogger<ModelVersionSubscriber>.Instance);

        await subscriber.StartAsync(CancellationToken.None);
        Task finished = await Task.WhenAny(weightsRequested.Task, Task.Delay(TimeSpan.FromSeconds(30)));
        finished.ShouldBe(weightsRequested.Task, "the subscriber did not start downloading the weights within 30 s");
        await subscriber.StopAsync(CancellationToken.None);

        subscriber.ConsumerThread.ShouldNotBeNull();
        subscriber.ConsumerThread.IsAlive.ShouldBeFalse("the topic reader still ran after the subscriber stopped");
        live.CurrentVersion.ShouldBeNull();
    }

    // Starts a store on 127.0.0.1 that serves the spec and manifest of source, and responds to a weights request with
    // headers and then nothing until the client disconnects or 60 s pass.
    private static async Task<WebApplication> StartStallingStoreAsync(ModelStore source, TaskCompletionSource weightsRequested)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        WebApplication app = builder.Build();
        app.MapGet("/store/v1/versions/{version}/{file}", async (HttpContext context, long version, string file) =>
        {
            if (file != ModelStore.WeightsFileName)
            {
                await context.Response.SendFileAsync(Path.Combine(source.VersionDirectory(version), file), context.RequestAborted);
                return;
            }

            await context.Response.StartAsync(context.RequestAborted);
            weightsRequested.TrySetResult();
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(60), context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                // The replica stopped and closed the connection.
            }
        });
        await app.StartAsync();
        return app;
    }
}
