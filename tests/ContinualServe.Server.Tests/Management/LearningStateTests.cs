using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Confluent.Kafka;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Server.Cli;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Management;

/// <summary>
/// The learner's state in GET /manage/v1/learning and in the status page's JSON: real values from a learner that
/// runs in the same process (the all role), and null in a serve process.
/// </summary>
public sealed class LearningStateTests
{
    private const int Examples = 60;
    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(60);

    [Fact(Timeout = 60_000)]
    public async Task ServeRoleReportsNoLearner()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false);

        JsonElement learning = await GetLearningAsync(server.Management, ManagementServer.Token);
        using JsonDocument status = JsonDocument.Parse(await server.Inference.GetStringAsync("ui/api/status"));

        learning.GetProperty("paused").GetBoolean().ShouldBeFalse();
        learning.GetProperty("learner").ValueKind.ShouldBe(JsonValueKind.Null);
        status.RootElement.GetProperty("learner").ValueKind.ShouldBe(JsonValueKind.Null);
    }

    [Fact(Timeout = 180_000)]
    public async Task AllRoleReportsLearnerState()
    {
        await using AllRole all = await AllRole.StartAsync();
        ProduceExamples(all.BootstrapServers);

        JsonElement learning = await WaitForLearnerAsync(all, learner => learner.GetProperty("trained").GetInt64() > 0, "no trained examples");
        JsonElement learner = learning.GetProperty("learner");
        learning.GetProperty("paused").GetBoolean().ShouldBeFalse();
        learner.GetProperty("running").GetBoolean().ShouldBeTrue();
        learner.GetProperty("stopped").GetBoolean().ShouldBeFalse();
        learner.GetProperty("ready").GetBoolean().ShouldBeTrue();
        learner.GetProperty("paused").GetBoolean().ShouldBeFalse();
        learner.GetProperty("brokerAvailable").GetBoolean().ShouldBeTrue();
        learner.GetProperty("diverged").GetBoolean().ShouldBeFalse();
        learner.GetProperty("roundWriteStalled").GetBoolean().ShouldBeFalse();
        learner.GetProperty("fileReadStalled").GetBoolean().ShouldBeFalse();
        learner.GetProperty("markerWriteStalled").GetBoolean().ShouldBeFalse();
        learner.GetProperty("currentTask").GetInt32().ShouldBe(1);
        learner.GetProperty("trained").GetInt64().ShouldBeLessThanOrEqualTo(Examples);
        learner.GetProperty("rejected").GetInt64().ShouldBe(0);
        learner.GetProperty("rollbacks").GetInt64().ShouldBe(0);
        learner.GetProperty("latestVersion").GetInt64().ShouldBeGreaterThanOrEqualTo(2, "version 1 is the untrained start");
        learner.GetProperty("consumerLag").GetInt64().ShouldBeGreaterThanOrEqualTo(0);
        learner.GetProperty("assignedPartitions").GetInt32().ShouldBe(1);

        JsonElement running = await GetStatusLearnerAsync(all);
        running.GetProperty("state").GetString().ShouldBe("running");
        running.GetProperty("ready").GetBoolean().ShouldBeTrue();
        running.GetProperty("currentTask").GetInt32().ShouldBe(1);
        running.GetProperty("trained").GetInt64().ShouldBeGreaterThan(0);
        running.GetProperty("latestVersion").GetInt64().ShouldBeGreaterThanOrEqualTo(2);
        running.GetProperty("consumerLag").GetInt64().ShouldBeGreaterThanOrEqualTo(0);
        running.GetProperty("assignedPartitions").GetInt32().ShouldBe(1);

        await SendAsync(all, HttpMethod.Post, "manage/v1/learning/pause");
        JsonElement paused = await WaitForLearnerAsync(all, learner => learner.GetProperty("paused").GetBoolean(), "the learner did not apply the pause");
        paused.GetProperty("paused").GetBoolean().ShouldBeTrue();
        paused.GetProperty("learner").GetProperty("ready").GetBoolean().ShouldBeFalse();
        paused.GetProperty("learner").GetProperty("running").GetBoolean().ShouldBeTrue();
        JsonElement pausedSection = await GetStatusLearnerAsync(all);
        pausedSection.GetProperty("state").GetString().ShouldBe("paused");
        pausedSection.GetProperty("ready").GetBoolean().ShouldBeFalse();

        await SendAsync(all, HttpMethod.Post, "manage/v1/learning/resume");
        JsonElement resumed = await WaitForLearnerAsync(all, learner => learner.GetProperty("ready").GetBoolean(), "the learner did not become ready after the resume");
        resumed.GetProperty("learner").GetProperty("paused").GetBoolean().ShouldBeFalse();
        (await GetStatusLearnerAsync(all)).GetProperty("state").GetString().ShouldBe("running");
    }

    private static async Task<JsonElement> GetLearningAsync(HttpClient client, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "manage/v1/learning");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using HttpResponseMessage response = await client.SendAsync(request);
        string body = await response.Content.ReadAsStringAsync();
        response.StatusCode.ShouldBe(HttpStatusCode.OK, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static async Task SendAsync(AllRole all, HttpMethod method, string path)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AllRole.Token);
        using HttpResponseMessage response = await all.Client.SendAsync(request);
        response.StatusCode.ShouldBe(HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
    }

    // Polls GET /manage/v1/learning every 100 ms until the learner object meets the condition, and returns the whole body.
    private static async Task<JsonElement> WaitForLearnerAsync(AllRole all, Func<JsonElement, bool> condition, string failure)
    {
        DateTime deadline = DateTime.UtcNow + WaitLimit;
        while (true)
        {
            JsonElement learning = await GetLearningAsync(all.Client, AllRole.Token);
            JsonElement learner = learning.GetProperty("learner");
            learner.ValueKind.ShouldBe(JsonValueKind.Object);
            if (condition(learner))
            {
                return learning;
            }

            DateTime.UtcNow.ShouldBeLessThan(deadline, $"{failure}; last state: {learner}");
            await Task.Delay(100);
        }
    }

    private static async Task<JsonElement> GetStatusLearnerAsync(AllRole all)
    {
        using JsonDocument status = JsonDocument.Parse(await all.Client.GetStringAsync("ui/api/status"));
        JsonElement learner = status.RootElement.GetProperty("learner");
        learner.ValueKind.ShouldBe(JsonValueKind.Object);
        return learner.Clone();
    }

    // Task 1, two alternating labels, with features that differ per label, in the JSON record format.
    private static void ProduceExamples(string bootstrapServers)
    {
        using IProducer<byte[], byte[]> producer = new ProducerBuilder<byte[], byte[]>(KafkaDefaults.CreateProducerConfig(bootstrapServers)).Build();
        var features = new float[784];
        for (int index = 0; index < Examples; index++)
        {
            int label = index % 2;
            Array.Fill(features, label == 0 ? 0f : 255f);
            string id = "learning-state-" + index;
            byte[] value = ExampleRecordCodec.Encode(id, 1, label, features);
            producer.Produce(AllRole.Topic, new Message<byte[], byte[]> { Key = System.Text.Encoding.UTF8.GetBytes(id), Value = value });
        }

        producer.Flush(TimeSpan.FromSeconds(20));
    }

    /// <summary>The all role on an ephemeral port, with a management token, its own embedded broker and a temporary store.</summary>
    private sealed class AllRole : IAsyncDisposable
    {
        public const string Topic = "fashion-mnist";
        public const string Token = "learning-state-token-0123456789";

        private readonly EmbeddedKafkaBroker broker;
        private readonly WebApplication app;
        private readonly string directory;

        private AllRole(EmbeddedKafkaBroker broker, WebApplication app, string directory, string address)
        {
            this.broker = broker;
            this.app = app;
            this.directory = directory;
            Client = new HttpClient { BaseAddress = new Uri(address + "/"), Timeout = TimeSpan.FromSeconds(10) };
        }

        public HttpClient Client { get; }

        public string BootstrapServers => broker.BootstrapServers;

        public static async Task<AllRole> StartAsync()
        {
            string directory = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(directory);
            string tokenFile = Path.Combine(directory, "management-token");
            await File.WriteAllTextAsync(tokenFile, Token + "\n");
            EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
            broker.CreateTopic(Topic, 1);
            broker.CreateTopic(Topic + ".dlq", 1);
            broker.CreateTopic("model-versions", 1);
            WebApplication app = AllCommand.Build([
                "--urls", "http://127.0.0.1:0",
                "--Logging:LogLevel:Default=Warning",
                "--Management:TokenFile=" + tokenFile,
                "--Learner:BootstrapServers=" + broker.BootstrapServers,
                "--Learner:StoreDirectory=" + Path.Combine(directory, "models"),
                "--Learner:Device=cpu",
                "--Learner:SessionTimeout=00:00:03",
                "--Learner:InitialSpec:HiddenSizes:0=16",
            ]);
            await app.StartAsync();
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return new AllRole(broker, app, directory, address);
        }

        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
            await app.StopAsync();
            await app.DisposeAsync();
            broker.Dispose();
            Directory.Delete(directory, recursive: true);
        }
    }
}
