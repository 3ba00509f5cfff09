using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ContinualServe.Learner.Kafka;
using ContinualServe.Server.Cli;
using ContinualServe.Server.Tests.OpenApi;
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
        await using LearnerPort learner = await LearnerPort.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(learner.Address + "/"), Timeout = TimeSpan.FromSeconds(10) };

        using HttpResponseMessage response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

        response.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        response.Content.Headers.ContentType.ShouldNotBeNull().MediaType.ShouldBe("application/json");
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        string message = error.RootElement.GetProperty("error").GetString()!;
        message.ShouldContain("No route matches /" + path);
        message.ShouldContain("learner's port");
        message.ShouldContain(LearnCommand.LearnerStatusPath);
        message.ShouldContain("serve or all");
    }

    // A serve process on the learner's volume runs no learner, so this port is where its state can be read.
    [Fact(Timeout = 60_000)]
    public async Task LearnerPortReturnsLearnerStatus()
    {
        await using LearnerPort learner = await LearnerPort.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(learner.Address + "/"), Timeout = TimeSpan.FromSeconds(10) };

        // A running learner becomes ready once the group has assigned its partition and the learner has measured the lag.
        JsonElement status = await WaitForStatusAsync(client, "ready");

        status.GetProperty("running").GetBoolean().ShouldBeTrue();
        status.GetProperty("consumerLag").GetInt64().ShouldBe(0);
        status.GetProperty("assignedPartitions").GetInt32().ShouldBe(1);
        status.GetProperty("paused").GetBoolean().ShouldBeFalse();
        status.GetProperty("brokerAvailable").GetBoolean().ShouldBeTrue();
        status.GetProperty("diverged").GetBoolean().ShouldBeFalse();
        status.GetProperty("currentTask").GetInt32().ShouldBe(0);
        status.GetProperty("trained").GetInt64().ShouldBe(0);
        status.GetProperty("latestVersion").GetInt64().ShouldBe(1, "the untrained version that the learner saves in an empty store");
    }

    // Replicas across the cluster reach this port, so it needs the same Kestrel limits as the inference port.
    [Fact(Timeout = 30_000)]
    public async Task LearnerPortAppliesHttpLimits()
    {
        await using LearnerPort learner = await LearnerPort.StartAsync("--HttpLimits:RequestHeadersTimeout=00:00:01");
        var address = new Uri(learner.Address);
        using var client = new TcpClient();
        await client.ConnectAsync(address.Host, address.Port);
        NetworkStream stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("GET /store/v1/versions HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
        var started = DateTime.UtcNow;

        // Kestrel's own default is 30 s, so a learner without the HttpLimits settings sends nothing within 10 s.
        var buffer = new byte[1024];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        int read;
        try
        {
            read = await stream.ReadAsync(buffer, timeout.Token);
        }
        catch (OperationCanceledException)
        {
            read = -1;
        }

        read.ShouldNotBe(-1, "the learner neither answered nor closed the connection within 10 s of unfinished headers");
        string answer = Encoding.ASCII.GetString(buffer, 0, read);
        (read == 0 || answer.StartsWith("HTTP/1.1 408", StringComparison.Ordinal)).ShouldBeTrue($"answer: {answer}");
        (DateTime.UtcNow - started).ShouldBeLessThan(TimeSpan.FromSeconds(6), "time until the learner closed a request with unfinished headers");
    }

    [Fact(Timeout = 30_000)]
    public async Task LearnerPortSendsNoServerHeader()
    {
        await using LearnerPort learner = await LearnerPort.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(learner.Address + "/"), Timeout = TimeSpan.FromSeconds(10) };

        using HttpResponseMessage response = await client.GetAsync("v2/health/live");

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        response.Headers.Server.ShouldBeEmpty();
        response.Headers.GetValues("X-Content-Type-Options").ShouldBe(["nosniff"]);
    }

    // The learner thread starts with the host, and reports running once it has subscribed to the topic.
    private static Task<JsonElement> WaitForRunningAsync(HttpClient client) => WaitForStatusAsync(client, "running");

    // Polls the learner status every 100 ms until its boolean property is true, and returns the status.
    private static async Task<JsonElement> WaitForStatusAsync(HttpClient client, string property)
    {
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            using HttpResponseMessage response = await client.GetAsync(LearnCommand.LearnerStatusPath.TrimStart('/'));
            string body = await response.Content.ReadAsStringAsync();
            response.StatusCode.ShouldBe(HttpStatusCode.OK, body);
            JsonElement status = JsonDocument.Parse(body).RootElement.Clone();
            if (status.GetProperty(property).GetBoolean())
            {
                return status;
            }

            DateTime.UtcNow.ShouldBeLessThan(deadline, $"the learner did not report {property}; last state: {body}");
            await Task.Delay(100);
        }
    }

    // Load balancers and probes send HEAD to the health routes, on the learner's port as on the inference port.
    [Fact(Timeout = 60_000)]
    public async Task LearnerHealthAcceptsHead()
    {
        await using LearnerPort learner = await LearnerPort.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(learner.Address + "/"), Timeout = TimeSpan.FromSeconds(10) };

        await HeadResponses.ShouldMatchGetAsync(client, "v2/health/live", HttpStatusCode.OK);
        // The learn port is ready while the learner thread runs.
        await WaitForRunningAsync(client);
        await HeadResponses.ShouldMatchGetAsync(client, "v2/health/ready", HttpStatusCode.OK);
    }

    // Monitoring and replicas may probe the learner's state, its document and its store with HEAD as well.
    [Fact(Timeout = 60_000)]
    public async Task LearnerGetRoutesAcceptHead()
    {
        await using LearnerPort learner = await LearnerPort.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(learner.Address + "/"), Timeout = TimeSpan.FromSeconds(10) };

        await HeadResponses.ShouldMatchGetAsync(client, LearnCommand.LearnerStatusPath.TrimStart('/'), HttpStatusCode.OK);
        await HeadResponses.ShouldMatchGetAsync(client, "openapi/v1.json", HttpStatusCode.OK);
        await HeadResponses.ShouldMatchGetAsync(client, "store/v1/versions", HttpStatusCode.OK);
        OpenApiSchemas document = await OpenApiSchemas.FetchAsync(client);
        Text(document.Operation(LearnCommand.LearnerStatusPath, "head"), "operationId").ShouldBe("HeadLearnerStatus");
    }

    // The serve role's document names these routes GetLive, HeadLive, GetReady and HeadReady. A client generated from
    // either document must find them on the learner's port under the same names and status codes.
    [Theory(Timeout = 60_000)]
    [InlineData("/v2/health/live", "Live", "live", new[] { 200 })]
    [InlineData("/v2/health/ready", "Ready", "ready", new[] { 200, 503 })]
    public async Task LearnerOpenApiDescribesHealth(string path, string name, string property, int[] statusCodes)
    {
        await using LearnerPort learner = await LearnerPort.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(learner.Address + "/"), Timeout = TimeSpan.FromSeconds(10) };

        OpenApiSchemas document = await OpenApiSchemas.FetchAsync(client);

        JsonObject get = document.Operation(path, "get");
        JsonObject head = document.Operation(path, "head");
        string[] codes = [.. statusCodes.Select(code => code.ToString(CultureInfo.InvariantCulture))];
        Text(get, "operationId").ShouldBe("Get" + name);
        Text(head, "operationId").ShouldBe("Head" + name);
        Text(get, "summary").ShouldNotBeNullOrWhiteSpace($"summary of GET {path}");
        Text(head, "summary").ShouldNotBeNullOrWhiteSpace($"summary of HEAD {path}");
        Tags(get).ShouldBe(["Health (Open Inference Protocol v2)"]);
        Tags(head).ShouldBe(["Health (Open Inference Protocol v2)"]);
        get["responses"]!.AsObject().Select(response => response.Key).ShouldBe(codes, ignoreOrder: true);
        head["responses"]!.AsObject().Select(response => response.Key).ShouldBe(codes, ignoreOrder: true);
        foreach (int statusCode in statusCodes)
        {
            OpenApiSchemas.PropertyNames(document.ResponseSchema(get, statusCode)).ShouldBe([property], $"GET {path} {statusCode}");
            head["responses"]![statusCode.ToString(CultureInfo.InvariantCulture)]!["content"].ShouldBeNull($"HEAD {path} {statusCode} declares a body");
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task LearnerOpenApiOperationIdsAreUnique()
    {
        await using LearnerPort learner = await LearnerPort.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(learner.Address + "/"), Timeout = TimeSpan.FromSeconds(10) };

        OpenApiSchemas document = await OpenApiSchemas.FetchAsync(client);

        string?[] operationIds = [.. document.Document["paths"]!.AsObject()
            .SelectMany(path => path.Value!.AsObject())
            .Select(operation => Text(operation.Value!.AsObject(), "operationId"))];
        operationIds.ShouldAllBe(id => id != null);
        operationIds.ShouldBeUnique();
    }

    private static string? Text(JsonObject operation, string property) => operation[property]?.GetValue<string>();

    private static string[] Tags(JsonObject operation) =>
        [.. operation["tags"]?.AsArray().Select(tag => tag!.GetValue<string>()) ?? []];

    /// <summary>A learn role on an ephemeral port, with its own embedded broker and temporary store.</summary>
    private sealed class LearnerPort : IAsyncDisposable
    {
        private readonly EmbeddedKafkaBroker broker;
        private readonly WebApplication app;

        private LearnerPort(EmbeddedKafkaBroker broker, WebApplication app, string address)
        {
            this.broker = broker;
            this.app = app;
            Address = address;
        }

        public string Address { get; }

        public static async Task<LearnerPort> StartAsync(params string[] arguments)
        {
            string store = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
            EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic("fashion-mnist", 1);
            broker.CreateTopic("model-versions", 1);
            WebApplication app = LearnCommand.Build([
                "--urls", "http://127.0.0.1:0",
                "--Logging:LogLevel:Default=Warning",
                "--Learner:BootstrapServers=" + broker.BootstrapServers,
                "--Learner:StoreDirectory=" + store,
                "--Learner:Device=cpu",
                "--Learner:SessionTimeout=00:00:03",
                .. arguments,
            ]);
            await app.StartAsync();
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return new LearnerPort(broker, app, address);
        }

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync();
            await app.DisposeAsync();
            broker.Dispose();
        }
    }
}
