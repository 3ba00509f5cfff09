using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;
using Xunit.Abstractions;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>
/// The production shape on 127.0.0.1: the embedded broker, one <c>continualserve learn</c> process and
/// <c>continualserve serve</c> replicas as real child processes of the built executable. Replicas learn of
/// versions only through the version topic and download them from the learner's HTTP store.
/// </summary>
public sealed partial class ReplicaDistributionTests(ITestOutputHelper testOutput)
{
    internal const string ModelName = "fashion-mnist";
    internal const string ExampleTopic = "examples";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan FollowTimeout = TimeSpan.FromSeconds(30);

    private const string StoreToken = "replica-distribution-store-token";

    private readonly List<ContinualServeProcess> processes = [];

    [Fact]
    public async Task ReplicasFollowLearnerAndRejectTamperedWeights()
    {
        string root = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        await File.WriteAllTextAsync(StoreTokenFile(root), StoreToken);
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(ExampleTopic, 1);
        broker.CreateTopic(ExampleTopic + ".dlq", 1);
        broker.CreateTopic("model-versions", 1);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", StoreToken);
        try
        {
            // The learner and the replicas share a store token, so every download below also passes its check.
            string learnerUrl = await StartLearnerAsync(root, broker.BootstrapServers);
            await AssertLearnerDocumentsItsRoutesAsync(http, learnerUrl);
            using (var anonymous = new HttpClient { Timeout = TimeSpan.FromSeconds(10) })
            using (HttpResponseMessage response = await anonymous.GetAsync(new Uri(learnerUrl + "/store/v1/versions")))
            {
                response.StatusCode.ShouldBe(HttpStatusCode.Unauthorized, "the learner's store must require its token");
            }

            string first = await StartServerAsync(root, "replica-a", broker.BootstrapServers);
            string second = await StartServerAsync(root, "replica-b", broker.BootstrapServers);

            // The learner announces the version it starts from, so both replicas become ready on version 1.
            await WaitForVersionAsync(http, [first, second], expected: 1, StartTimeout);

            // A promotion: the learner trains on task 1 and publishes version 2 or later.
            await ProduceTaskAsync(broker.BootstrapServers);
            long promoted = await WaitForLearnerVersionAsync(http, learnerUrl, minimum: 2, FollowTimeout);
            await WaitForVersionAsync(http, [first, second], promoted, FollowTimeout);

            // A replica that starts after the promotion reads the compacted topic from the beginning.
            string late = await StartServerAsync(root, "replica-late", broker.BootstrapServers);
            await WaitForVersionAsync(http, [late], promoted, StartTimeout);

            // A tampered weights file: announced with the true checksum, served with one flipped byte.
            long forged = promoted + 100;
            string forgedWeights = ForgeVersion(Path.Combine(root, "learner"), promoted, forged, out string originalWeights);
            using (var publisher = new ModelVersionPublisher(broker.BootstrapServers, new DistributionOptions(), NullLogger<ModelVersionPublisher>.Instance))
            {
                ModelManifest manifest = ReadManifest(Path.Combine(root, "learner"), promoted);
                publisher.Publish(new ModelVersionAnnouncement
                {
                    ModelName = ModelName,
                    Version = forged,
                    WeightsSha256 = manifest.WeightsSha256,
                    WeightsBytes = manifest.WeightsBytes,
                    CreatedAt = DateTimeOffset.UtcNow,
                    StoreUrl = learnerUrl,
                });
                publisher.Flush(TimeSpan.FromSeconds(10));
            }

            // Each replica must reject the download at least twice (first attempt and one retry) and keep serving.
            foreach (string server in new[] { first, second })
            {
                await WaitForCounterAsync(http, server, "corrupt", minimum: 2, FollowTimeout);
                (await ServedVersionAsync(http, server)).ShouldBe(promoted, $"{server} must keep serving the verified version");
            }

            // Once the learner serves intact weights, the retries succeed.
            File.Copy(originalWeights, forgedWeights, overwrite: true);
            await WaitForVersionAsync(http, [first, second, late], forged, FollowTimeout);
        }
        catch
        {
            foreach (ContinualServeProcess process in processes)
            {
                testOutput.WriteLine($"--- {process.Name} (exited: {process.HasExited})");
                testOutput.WriteLine(process.OutputTail);
            }

            throw;
        }
        finally
        {
            foreach (ContinualServeProcess process in processes)
            {
                await process.DisposeAsync();
            }

            Directory.Delete(root, recursive: true);
        }
    }

    private static string StoreTokenFile(string root) => Path.Combine(root, "store-token");

    private async Task<string> StartLearnerAsync(string root, string bootstrapServers)
    {
        (ContinualServeProcess learner, string url) = await ContinualServeProcess.StartOnFreePortAsync("learner", root, "http", listenUrl =>
        [
            "learn",
            "--urls", listenUrl,
            "--bootstrap-servers", bootstrapServers,
            "--topic", ExampleTopic,
            "--store", Path.Combine(root, "learner"),
            "--device", "cpu",
            "--store-url", listenUrl,
            "--Distribution:StoreTokenFile=" + StoreTokenFile(root),
            "--Learner:IdleRoundDelay=00:00:00.300",
            "--Learner:RoundExamples=100000",
            "--Learner:InitialSpec:Name=" + ModelName,
        ]);
        processes.Add(learner);
        return url;
    }

    private async Task<string> StartServerAsync(string root, string name, string bootstrapServers)
    {
        (ContinualServeProcess server, string url) = await ContinualServeProcess.StartOnAnyPortAsync(name, root, "http", listenUrl =>
        [
            "serve",
            "--urls", listenUrl,
            "--store", Path.Combine(root, name),
            "--device", "cpu",
            "--model-name", ModelName,
            "--bootstrap-servers", bootstrapServers,
            "--Distribution:StoreTokenFile=" + StoreTokenFile(root),
            "--Distribution:RetryDelay=00:00:00.200",
            "--Distribution:MaxRetryDelay=00:00:01",
        ]);
        processes.Add(server);
        return url;
    }

    internal static async Task ProduceTaskAsync(string bootstrapServers)
    {
        IdxDataset dataset = IdxDataset.LoadFashionMnist(Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist"), training: true);
        var producer = new ExampleProducer(bootstrapServers, ExampleTopic, NullLogger.Instance) { MaxLag = 0, MaxTasks = 1 };
        long sent = await producer.ProduceAsync(dataset, null, null, CancellationToken.None);
        sent.ShouldBeGreaterThan(100);
    }

    /// <summary>
    /// Copies version <paramref name="source"/> of the learner's store to <paramref name="forged"/> with the manifest's
    /// version changed and one byte of the weights flipped. Returns the forged weights path; the out value is the intact copy.
    /// </summary>
    private static string ForgeVersion(string storeDirectory, long source, long forged, out string originalWeights)
    {
        var store = new ModelStore(storeDirectory);
        string sourceDirectory = store.VersionDirectory(source);
        string forgedDirectory = store.VersionDirectory(forged);
        string staging = forgedDirectory + "-staging";
        Directory.CreateDirectory(staging);
        foreach (string file in Directory.EnumerateFiles(sourceDirectory))
        {
            File.Copy(file, Path.Combine(staging, Path.GetFileName(file)));
        }

        string manifestPath = Path.Combine(staging, ModelStore.ManifestFileName);
        JsonNode manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!;
        manifest["version"] = forged;
        File.WriteAllText(manifestPath, manifest.ToJsonString());
        byte[] weights = File.ReadAllBytes(Path.Combine(staging, ModelStore.WeightsFileName));
        weights[weights.Length / 2] ^= 0xFF;
        File.WriteAllBytes(Path.Combine(staging, ModelStore.WeightsFileName), weights);
        Directory.Move(staging, forgedDirectory);

        originalWeights = Path.Combine(sourceDirectory, ModelStore.WeightsFileName);
        return Path.Combine(forgedDirectory, ModelStore.WeightsFileName);
    }

    private static ModelManifest ReadManifest(string storeDirectory, long version) =>
        JsonSerializer.Deserialize<ModelManifest>(
            File.ReadAllBytes(Path.Combine(new ModelStore(storeDirectory).VersionDirectory(version), ModelStore.ManifestFileName)),
            ModelManifest.JsonOptions)!;

    private async Task WaitForVersionAsync(HttpClient http, string[] servers, long expected, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        var served = servers.ToDictionary(server => server, _ => (long?)null);
        while (!deadline.IsCancellationRequested)
        {
            foreach (string server in servers)
            {
                long? version = await ServedVersionAsync(http, server);
                served[server] = version;
                if (version is not null)
                {
                    version.Value.ShouldBeLessThanOrEqualTo(expected, $"{server} served a version newer than expected");
                }
            }

            if (served.Values.All(version => version == expected))
            {
                return;
            }

            AssertAllRunning();
            await Task.Delay(200, CancellationToken.None);
        }

        served.ShouldAllBe(pair => pair.Value == expected, $"replicas must serve version {expected} within {timeout.TotalSeconds} s");
    }

    /// <summary>Returns the version that computed an inference response, or null while the server is not ready.</summary>
    internal static async Task<long?> ServedVersionAsync(HttpClient http, string server)
    {
        string body = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":["
            + string.Join(',', Enumerable.Repeat("0", 784)) + "]}]}";
        try
        {
            using var content = new StringContent(body, Encoding.UTF8, "application/json");
            using HttpResponseMessage response = await http.PostAsync(new Uri(server + "/v2/models/" + ModelName + "/infer"), content);
            if (!response.IsSuccessStatusCode)
            {
                return null;
            }

            using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return long.Parse(document.RootElement.GetProperty("model_version").GetString()!, CultureInfo.InvariantCulture);
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    private async Task<long> WaitForLearnerVersionAsync(HttpClient http, string learnerUrl, long minimum, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        long newest = 0;
        while (!deadline.IsCancellationRequested)
        {
            StoreListing? listing = await http.GetFromJsonAsync<StoreListing>(new Uri(learnerUrl + "/store/v1/versions"));
            newest = listing!.Versions.Count == 0 ? 0 : listing.Versions[^1];
            if (newest >= minimum)
            {
                // Let the idle round that follows the last record finish, so the newest version stays the newest.
                await Task.Delay(1000, CancellationToken.None);
                listing = await http.GetFromJsonAsync<StoreListing>(new Uri(learnerUrl + "/store/v1/versions"));
                return listing!.Versions[^1];
            }

            AssertAllRunning();
            await Task.Delay(200, CancellationToken.None);
        }

        newest.ShouldBeGreaterThanOrEqualTo(minimum, $"the learner must publish version {minimum} within {timeout.TotalSeconds} s");
        return newest;
    }

    /// <summary>Waits for the learner to listen, then checks that its OpenAPI document lists its health and store routes and the store token's responses.</summary>
    private async Task AssertLearnerDocumentsItsRoutesAsync(HttpClient http, string learnerUrl)
    {
        using var deadline = new CancellationTokenSource(StartTimeout);
        JsonElement? document = null;
        while (document is null && !deadline.IsCancellationRequested)
        {
            AssertAllRunning();
            try
            {
                document = await http.GetFromJsonAsync<JsonElement>(new Uri(learnerUrl + "/openapi/v1.json"));
            }
            catch (HttpRequestException)
            {
                await Task.Delay(200, CancellationToken.None);
            }
        }

        document.ShouldNotBeNull($"the learner did not serve /openapi/v1.json within {StartTimeout.TotalSeconds} s");
        string[] paths = document.Value.GetProperty("paths").EnumerateObject().Select(path => path.Name).ToArray();
        paths.ShouldContain("/v2/health/ready");
        paths.ShouldContain("/store/v1/versions");
        paths.ShouldContain("/store/v1/versions/{version}/{file}");

        // The store token is configured, so the store routes declare its 401 and 403.
        JsonElement responses = document.Value.GetProperty("paths").GetProperty("/store/v1/versions").GetProperty("get").GetProperty("responses");
        responses.TryGetProperty("401", out _).ShouldBeTrue("the guarded store route does not declare 401");
        responses.TryGetProperty("403", out _).ShouldBeTrue("the guarded store route does not declare 403");
    }

    private async Task WaitForCounterAsync(HttpClient http, string server, string outcome, double minimum, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        double count = 0;
        while (!deadline.IsCancellationRequested)
        {
            string metrics = await http.GetStringAsync(new Uri(server + "/metrics"));
            Match match = Regex.Match(metrics, "^continualserve_model_downloads_total\\{outcome=\"" + outcome + "\"\\} (\\S+)$", RegexOptions.Multiline);
            count = match.Success ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
            if (count >= minimum)
            {
                return;
            }

            AssertAllRunning();
            await Task.Delay(200, CancellationToken.None);
        }

        count.ShouldBeGreaterThanOrEqualTo(minimum, $"{server} must count {minimum} {outcome} downloads within {timeout.TotalSeconds} s");
    }

    private void AssertAllRunning()
    {
        foreach (ContinualServeProcess process in processes)
        {
            process.HasExited.ShouldBeFalse($"{process.Name} exited early:{Environment.NewLine}{process.OutputTail}");
        }
    }

    private sealed record StoreListing(IReadOnlyList<long> Versions);
}
