using System.Net;
using System.Text.Json;
using ContinualServe.Learner.Kafka;
using ContinualServe.Server.Cli;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>
/// The learn role's HTTP port. Operators send management and inference requests to it by mistake, so its 404 names
/// what it serves and where those requests go.
/// </summary>
public sealed class LearnerRoutesTests
{
    [Theory(Timeout = 30_000)]
    [InlineData("GET", "manage/v1/versions")]
    [InlineData("POST", "v2/models/fashion-mnist/infer")]
    public async Task LearnerPortExplainsMissingRoute(string method, string path)
    {
        string store = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("fashion-mnist", 1);
        broker.CreateTopic("model-versions", 1);
        WebApplication app = LearnCommand.Build([
            "--urls", "http://127.0.0.1:0",
            "--Logging:LogLevel:Default=Warning",
            "--Learner:BootstrapServers=" + broker.BootstrapServers,
            "--Learner:StoreDirectory=" + store,
            "--Learner:Device=cpu",
            "--Learner:SessionTimeout=00:00:03",
        ]);
        await app.StartAsync();
        try
        {
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var client = new HttpClient { BaseAddress = new Uri(address + "/"), Timeout = TimeSpan.FromSeconds(10) };

            using HttpResponseMessage response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

            response.StatusCode.ShouldBe(HttpStatusCode.NotFound);
            response.Content.Headers.ContentType.ShouldNotBeNull().MediaType.ShouldBe("application/json");
            using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            string message = error.RootElement.GetProperty("error").GetString()!;
            message.ShouldContain("No route matches /" + path);
            message.ShouldContain("learner's port");
            message.ShouldContain("serve or all");
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}
