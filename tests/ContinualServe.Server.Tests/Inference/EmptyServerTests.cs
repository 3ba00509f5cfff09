using System.Net;
using ContinualServe.Model.Store;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

public sealed class EmptyServerTests
{
    [Fact]
    public async Task ServerWithoutVersionIsNotReady()
    {
        await using RunningServer server = await RunningServer.StartAsync(versions: 0);

        (await server.Client.GetAsync("v2/health/live")).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await server.Client.GetAsync("v2/health/ready")).StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        using HttpResponseMessage response = await server.Client.PostAsync("v2/models/test-model/infer", InferenceRequests.Json(InferenceRequests.Body(1, 16)));
        response.StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        (await server.Client.GetAsync("v2/models/test-model")).StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        (await server.Client.GetAsync("v2/models/other")).StatusCode.ShouldBe(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task CorruptVersionIsNeverServed()
    {
        await using RunningServer server = await RunningServer.StartAsync(versions: 1);
        ModelVersion second = RunningServer.SaveVersion(server.Store, 2);
        File.WriteAllBytes(second.WeightsPath, [1, 2, 3]);

        server.Swapper.TrySwapToLatest().ShouldBeFalse();

        using HttpResponseMessage response = await server.Client.PostAsync("v2/models/test-model/infer", InferenceRequests.Json(InferenceRequests.Body(1, 16)));
        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        (await response.Content.ReadAsStringAsync()).ShouldContain("\"model_version\":\"1\"");
    }
}
