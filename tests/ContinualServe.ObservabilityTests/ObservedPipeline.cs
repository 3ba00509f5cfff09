using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using Confluent.Kafka;
using ContinualServe.Learner;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;
using ContinualServe.Server.Demo;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace ContinualServe.ObservabilityTests;

/// <summary>
/// One server+learner run on the committed slice, shared by the tests of the collection. It runs the embedded
/// broker and a learner that streams the first two Split Fashion-MNIST tasks, after a few invalid records for
/// the dead-letter path. The learner announces each version on the version topic, and the server follows that topic
/// as a replica does: it downloads each version from the learner's store routes, which it maps itself, and swaps it
/// in. The learner is also registered in the server's services, as in the demo, so that the status page shows its
/// state. It gets inference load, bad requests included, and management requests with and without the token.
/// A real Prometheus scrapes the server's /metrics and evaluates the alert rules. The load keeps running until
/// the fixture is disposed, so rates stay defined while the tests query.
/// </summary>
[SuppressMessage("Design", "CA1001:Types that own disposable fields should be disposable", Justification = "xunit disposes fixtures through IAsyncLifetime.DisposeAsync.")]
public sealed class ObservedPipeline : IAsyncLifetime
{
    public const string Topic = "fashion-mnist";
    public const string VersionTopic = "model-versions";
    public const int InvalidRecords = 5;
    private const string ManagementToken = "observed-pipeline-management-token";
    private readonly CancellationTokenSource stopLoad = new();
    private EmbeddedKafkaBroker? broker;
    private ContinualLearner? learner;
    private ModelVersionPublisher? publisher;
    private Task? loadTask;
    private string runDirectory = "";

    public WebApplication Server { get; private set; } = null!;

    public Uri ServerAddress { get; private set; } = null!;

    public HttpClient ServerClient { get; private set; } = null!;

    public PrometheusServer Prometheus { get; private set; } = null!;

    public DateTimeOffset StartedAt { get; private set; }

    public long FinalVersion { get; private set; }

    public async Task InitializeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        CancellationToken token = timeout.Token;
        StartedAt = DateTimeOffset.UtcNow;
        runDirectory = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
        broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, partitionCount: 1);
        broker.CreateTopic(Topic + ".dlq", partitionCount: 1);
        broker.CreateTopic(VersionTopic, partitionCount: 1);
        var runLearner = new ContinualLearner(new LearnerOptions
        {
            BootstrapServers = broker.BootstrapServers,
            Topic = Topic,
            GroupId = "observability-tests",
            StoreDirectory = Path.Combine(runDirectory, "models"),
            Device = "cpu",
            RoundExamples = 200,
            SessionTimeout = TimeSpan.FromSeconds(3),
        }, NullLoggerFactory.Instance);
        learner = runLearner;

        string tokenFile = Path.Combine(runDirectory, "management-token");
        Directory.CreateDirectory(runDirectory);
        await File.WriteAllTextAsync(tokenFile, ManagementToken, token);
        string[] arguments =
        [
            "--Logging:LogLevel:Default=Warning",
            "--Management:TokenFile=" + tokenFile,
            "--Distribution:BootstrapServers=" + broker.BootstrapServers,
            "--Distribution:Topic=" + VersionTopic,
        ];
        Server = ServerHost.Build(arguments, "http://127.0.0.1:0", options =>
        {
            options.ModelName = Topic;
            options.StoreDirectory = Path.Combine(runDirectory, "replica");
            options.Device = "cpu";
        }, pollStore: false, configureBuilder: builder =>
        {
            builder.Services.AddVersionSubscriber(builder.Configuration);

            // Registered only for the status page's learner section. The server still gets its versions from the version topic.
            builder.Services.AddSingleton(runLearner);
        });
        Server.MapModelStoreApi(() => learner.Store);
        IdxDataset training = IdxDataset.LoadFashionMnist(RepositoryPaths.DataDirectory, training: true);
        IdxDataset test = IdxDataset.LoadFashionMnist(RepositoryPaths.DataDirectory, training: false);
        GoldenSetOfStreamedClasses(test).Save(learner.Store.RootDirectory);

        await Server.StartAsync(token);
        string address = Server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        ServerAddress = new Uri(address + "/");
        ServerClient = new HttpClient { BaseAddress = ServerAddress, Timeout = TimeSpan.FromSeconds(10) };

        // The learner's side of distribution, as the learn role wires it: each version is announced with the store URL.
        var distribution = new DistributionOptions { BootstrapServers = broker.BootstrapServers, Topic = VersionTopic, StoreUrl = address };
        publisher = new ModelVersionPublisher(broker.BootstrapServers, distribution, NullLogger<ModelVersionPublisher>.Instance);
        learner.VersionPublished += publisher.Publish;
        publisher.Publish(learner.Start());
        await WaitUntilServingAsync(token);
        Prometheus = await PrometheusServer.StartAsync(ServerAddress.Authority, [RepositoryPaths.RulesFile], token);
        await SendManagementRequestsAsync(token);

        var load = new InferenceLoad(test, maxDistinctRequests: 200);
        loadTask = load.RunAsync(new Uri(ServerAddress, $"v2/models/{Topic}/infer"), 2, TimeSpan.FromMilliseconds(20), stopLoad.Token);
        await SendBadRequestsAsync(token);

        await WaitForFirstScrapeAsync(token);
        await ProduceInvalidRecordsAsync(broker.BootstrapServers, token);
        var producer = new ExampleProducer(broker.BootstrapServers, Topic, NullLogger.Instance) { MaxLag = 300, MaxTasks = 2 };
        long produced = await producer.ProduceAsync(training, () => learner.Status.Position, null, token);
        FinalVersion = await WaitForCommittedAsync(learner.Store, produced + InvalidRecords, token);
        await WaitForScrapesAsync(token);
    }

    public async Task DisposeAsync()
    {
        await stopLoad.CancelAsync();
        if (loadTask is not null)
        {
            await loadTask;
        }

        Prometheus?.Dispose();
        learner?.Stop(TimeSpan.FromSeconds(30));
        publisher?.Dispose();
        if (Server is not null)
        {
            await Server.StopAsync(CancellationToken.None);
            await Server.DisposeAsync();
        }

        ServerClient?.Dispose();
        learner?.Dispose();
        broker?.Dispose();
        stopLoad.Dispose();
        try
        {
            Directory.Delete(runDirectory, recursive: true);
        }
        catch (IOException)
        {
            // Leftover temporary files are harmless.
        }
    }

    // Test images of the first two tasks' classes (0 to 3), so that each promotion measures the golden-set accuracy.
    // The gate's floor stays at its default of 0, so the set rejects no candidate.
    private static GoldenSet GoldenSetOfStreamedClasses(IdxDataset test) => new()
    {
        Examples = Enumerable.Range(0, test.Count)
            .Where(index => test.Labels[index] < 4)
            .Take(40)
            .Select(index => new GoldenExample(test.Labels[index], test.Image(index).ToArray().Select(pixel => (float)pixel).ToArray()))
            .ToArray(),
        UploadedAt = DateTimeOffset.UtcNow,
    };

    private async Task SendBadRequestsAsync(CancellationToken token)
    {
        for (int request = 0; request < 3; request++)
        {
            using var content = new StringContent("{\"inputs\":[]}", Encoding.UTF8, "application/json");
            using HttpResponseMessage response = await ServerClient.PostAsync($"v2/models/{Topic}/infer", content, token);
        }
    }

    // The server downloads the first version from the learner's store before it serves inference requests.
    private async Task WaitUntilServingAsync(CancellationToken token)
    {
        while (true)
        {
            using HttpResponseMessage response = await ServerClient.GetAsync($"v2/models/{Topic}/ready", token);
            if (response.IsSuccessStatusCode)
            {
                return;
            }

            await Task.Delay(200, token);
        }
    }

    // One request with the token and one without, so the management panel has both outcomes.
    private async Task SendManagementRequestsAsync(CancellationToken token)
    {
        foreach (string? bearer in new[] { ManagementToken, null })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "manage/v1/versions");
            if (bearer is not null)
            {
                request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
            }

            using HttpResponseMessage response = await ServerClient.SendAsync(request, token);
        }
    }

    private static async Task ProduceInvalidRecordsAsync(string bootstrapServers, CancellationToken token)
    {
        using IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = bootstrapServers }).Build();
        for (int record = 0; record < InvalidRecords; record++)
        {
            await producer.ProduceAsync(Topic, new Message<string, string> { Key = "bad-" + record, Value = "not a labeled example" }, token);
        }
    }

    // The learner commits offsets only after the version holding their effect is saved.
    private static async Task<long> WaitForCommittedAsync(ModelStore store, long records, CancellationToken token)
    {
        while (true)
        {
            ModelVersion? latest = store.TryLoadLatest();
            if (latest is not null && latest.Manifest.TrainingOffsets.Sum(offset => offset.Offset) >= records)
            {
                return latest.Number;
            }

            await Task.Delay(200, token);
        }
    }

    // The swap annotation needs a sample of the first version before later ones replace it.
    private async Task WaitForFirstScrapeAsync(CancellationToken token)
    {
        while (Value(await Prometheus.QueryAsync("max(continualserve_model_version)", token)) is double.NaN)
        {
            await Task.Delay(200, token);
        }
    }

    // Rates over 15 s need several scrapes after the last round; the matrix has 3 cells after two tasks.
    private async Task WaitForScrapesAsync(CancellationToken token)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            var matrix = await Prometheus.QueryAsync("count(continualserve_accuracy_matrix)", token);
            var version = await Prometheus.QueryAsync("max(continualserve_model_version)", token);
            bool complete = Value(matrix) == 3 && Value(version) == FinalVersion;
            if (complete && waited.Elapsed > TimeSpan.FromSeconds(4))
            {
                return;
            }

            await Task.Delay(500, token);
        }
    }

    private static double Value(System.Text.Json.JsonElement data)
    {
        var result = data.GetProperty("result");
        return result.GetArrayLength() == 0
            ? double.NaN
            : double.Parse(result[0].GetProperty("value")[1].GetString()!, System.Globalization.CultureInfo.InvariantCulture);
    }
}

[CollectionDefinition(Name)]
public sealed class ObservedPipelineGroup : ICollectionFixture<ObservedPipeline>
{
    public const string Name = "observed pipeline";
}
