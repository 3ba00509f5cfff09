using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ContinualServe.Learner.Kafka;
using Shouldly;
using Xunit;
using Xunit.Abstractions;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>The <c>learn</c> and <c>all</c> roles as child processes of the built executable.</summary>
public sealed class RoleCommandTests(ITestOutputHelper testOutput)
{
    private const string ManagementToken = "role-command-tests-management-token";

    [Fact]
    public async Task MissingBootstrapServersStopsLearner()
    {
        using var temporary = new TemporaryDirectory();
        string root = temporary.Path;
        await using ContinualServeProcess learner = ContinualServeProcess.Start("learner", root,
            "learn", "--urls", "http://127.0.0.1:0", "--store", Path.Combine(root, "models"), "--device", "cpu");
        int exitCode = await learner.WaitForExitAsync(TimeSpan.FromSeconds(60));

        exitCode.ShouldBe(2, learner.OutputTail);
        learner.OutputTail.ShouldContain("Invalid configuration");
        learner.OutputTail.ShouldContain("BootstrapServers");
    }

    [Fact]
    public async Task InvalidNestedLearnerSettingsStopLearner()
    {
        using var temporary = new TemporaryDirectory();
        string root = temporary.Path;
        await using ContinualServeProcess learner = ContinualServeProcess.Start("learner", root,
            "learn", "--urls", "http://127.0.0.1:0", "--store", Path.Combine(root, "models"), "--device", "cpu",
            "--bootstrap-servers", "127.0.0.1:PORT", "--Learner:Trainer:LearningRate=-1", "--Learner:Promotion:MaxForgetting=7",
            "--Learner:RoundExamples=0", "--Learner:InitialSpec:Architecture=bogus");
        int exitCode = await learner.WaitForExitAsync(TimeSpan.FromSeconds(60));

        exitCode.ShouldBe(2, learner.OutputTail);
        learner.OutputTail.ShouldContain("Learner:Trainer:LearningRate");
        learner.OutputTail.ShouldContain("Learner:Promotion:MaxForgetting");
        learner.OutputTail.ShouldContain("RoundExamples");
        learner.OutputTail.ShouldContain("Model architecture 'bogus' is unknown");
        learner.OutputTail.ShouldContain("Learner:BootstrapServers: '127.0.0.1:PORT' is not host:port");
        learner.OutputTail.ShouldNotContain("Hosting failed to start");
    }

    [Fact]
    public async Task LearnerThatCannotListenAnnouncesNothing()
    {
        using var temporary = new TemporaryDirectory();
        string root = temporary.Path;
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("model-versions", 1);
        using var occupied = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        occupied.Start();
        int port = ((System.Net.IPEndPoint)occupied.LocalEndpoint).Port;
        string store = Path.Combine(root, "models");
        await using ContinualServeProcess learner = ContinualServeProcess.Start("learner", root,
            "learn", "--urls", $"http://127.0.0.1:{port}", "--store", store, "--device", "cpu",
            "--bootstrap-servers", broker.BootstrapServers);
        int exitCode = await learner.WaitForExitAsync(TimeSpan.FromSeconds(60));

        exitCode.ShouldBe(2, learner.OutputTail);
        learner.OutputTail.ShouldContain("The process did not start: Failed to bind");
        learner.OutputTail.ShouldNotContain("Invalid configuration", customMessage: "another process holding the port is no configuration error");
        learner.OutputTail.ShouldNotContain("KestrelServerImpl", customMessage: "the bind failure is reported once, without the host's stack trace");
        learner.OutputTail.ShouldNotContain("Announced version");
        (Directory.Exists(store) ? Directory.GetDirectories(store, "v*") : []).ShouldBeEmpty();
    }

    [Theory]
    [InlineData("--urls", "garbage", "Invalid url: 'garbage'")]
    [InlineData("--urls", "http://127.0.0.1:99999", "outside 0 to 65535")]
    [InlineData("--store", "/proc/continualserve-store", "The model store directory '/proc/continualserve-store' cannot be used")]
    public async Task UnusableAddressOrStoreStopsServer(string option, string value, string message)
    {
        using var temporary = new TemporaryDirectory();
        string root = temporary.Path;
        var arguments = new Dictionary<string, string> { ["--urls"] = "http://127.0.0.1:0", ["--store"] = Path.Combine(root, "models") };
        arguments[option] = value;
        await using ContinualServeProcess server = ContinualServeProcess.Start("server", root,
            "serve", "--urls", arguments["--urls"], "--store", arguments["--store"], "--device", "cpu");
        int exitCode = await server.WaitForExitAsync(TimeSpan.FromSeconds(60));

        exitCode.ShouldBe(2, server.OutputTail);
        server.OutputTail.ShouldContain(message);
        server.OutputTail.ShouldNotContain("Unhandled exception: System");
    }

    [Fact]
    public async Task InvalidDistributionSettingStopsServer()
    {
        using var temporary = new TemporaryDirectory();
        string root = temporary.Path;
        await using ContinualServeProcess server = ContinualServeProcess.Start("server", root,
            "serve", "--urls", "http://127.0.0.1:0", "--store", Path.Combine(root, "models"), "--device", "cpu",
            "--Distribution:RetryDelay=00:00:05", "--Distribution:MaxRetryDelay=00:00:01");
        int exitCode = await server.WaitForExitAsync(TimeSpan.FromSeconds(60));

        exitCode.ShouldBe(2, server.OutputTail);
        server.OutputTail.ShouldContain("Distribution:MaxRetryDelay");
    }

    [Fact]
    public async Task ShortManagementTokenStopsAllRole()
    {
        using var temporary = new TemporaryDirectory();
        string root = temporary.Path;
        string tokenFile = Path.Combine(root, "token");
        await File.WriteAllTextAsync(tokenFile, "short");
        await using ContinualServeProcess all = ContinualServeProcess.Start("all", root,
            "all", "--urls", "http://127.0.0.1:0", "--store", Path.Combine(root, "models"), "--device", "cpu",
            "--bootstrap-servers", "127.0.0.1:9", "--management-token-file", tokenFile);
        int exitCode = await all.WaitForExitAsync(TimeSpan.FromSeconds(60));

        exitCode.ShouldBe(2, all.OutputTail);
        all.OutputTail.ShouldContain("has 5 characters; use at least 16");
        all.OutputTail.ShouldNotContain("Unhandled exception");
    }

    [Fact]
    public async Task AllRoleAnnouncesVersionsAndPins()
    {
        using var temporary = new TemporaryDirectory();
        string root = temporary.Path;
        string tokenFile = Path.Combine(root, "token");
        await File.WriteAllTextAsync(tokenFile, ManagementToken);
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(ReplicaDistributionTests.ExampleTopic, 1);
        broker.CreateTopic(ReplicaDistributionTests.ExampleTopic + ".dlq", 1);
        broker.CreateTopic("model-versions", 1);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var processes = new List<ContinualServeProcess>();
        try
        {
            (ContinualServeProcess all, string allUrl) = await ContinualServeProcess.StartOnFreePortAsync("all", root, "http", url =>
            [
                "all", "--urls", url, "--bootstrap-servers", broker.BootstrapServers, "--topic", ReplicaDistributionTests.ExampleTopic,
                "--store", Path.Combine(root, "all"), "--device", "cpu", "--store-url", url, "--management-token-file", tokenFile,
                "--Distribution:BootstrapServers=" + broker.BootstrapServers,
                "--Learner:IdleRoundDelay=00:00:00.300", "--Learner:RoundExamples=100000",
            ]);
            processes.Add(all);
            (ContinualServeProcess replica, string replicaUrl) = await ContinualServeProcess.StartOnAnyPortAsync("replica", root, "http", url =>
            [
                "serve", "--urls", url, "--store", Path.Combine(root, "replica"), "--device", "cpu",
                "--bootstrap-servers", broker.BootstrapServers, "--management-token-file", tokenFile,
            ]);
            processes.Add(replica);

            (await WaitForVersionAsync(http, [allUrl, replicaUrl], minimum: 1, processes)).ShouldBe(1);
            await ReplicaDistributionTests.ProduceTaskAsync(broker.BootstrapServers);

            long promoted = await WaitForVersionAsync(http, [allUrl, replicaUrl], minimum: 2, processes);

            promoted.ShouldBeGreaterThanOrEqualTo(2);

            // A pin on the learner's server reaches the replica through the version topic.
            using (HttpResponseMessage pin = await ManageAsync(http, HttpMethod.Post, allUrl, "versions/1/promote"))
            {
                pin.StatusCode.ShouldBe(HttpStatusCode.OK, await pin.Content.ReadAsStringAsync());
            }

            await WaitForVersionAsync(http, [allUrl, replicaUrl], minimum: 1, processes, maximum: 1);
            using (HttpResponseMessage versions = await ManageAsync(http, HttpMethod.Get, replicaUrl, "versions"))
            {
                JsonElement body = JsonDocument.Parse(await versions.Content.ReadAsStringAsync()).RootElement;
                body.GetProperty("pinned").GetInt64().ShouldBe(1, "the replica must keep the pin in its own store");
            }

            // A replica rejects pins of its own, which the next announcement from the learner would undo.
            using (HttpResponseMessage local = await ManageAsync(http, HttpMethod.Post, replicaUrl, $"versions/{promoted}/promote"))
            {
                local.StatusCode.ShouldBe(HttpStatusCode.Conflict);
                (await local.Content.ReadAsStringAsync()).ShouldContain("replica");
            }

            // Removing the pin on the learner's server returns the replica to the newest version.
            using (HttpResponseMessage unpin = await ManageAsync(http, HttpMethod.Delete, allUrl, "pin"))
            {
                unpin.StatusCode.ShouldBe(HttpStatusCode.OK, await unpin.Content.ReadAsStringAsync());
            }

            (await WaitForVersionAsync(http, [allUrl, replicaUrl], minimum: promoted, processes)).ShouldBeGreaterThanOrEqualTo(promoted);
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
        }
    }

    private static async Task<HttpResponseMessage> ManageAsync(HttpClient http, HttpMethod method, string server, string route)
    {
        using var request = new HttpRequestMessage(method, $"{server}/manage/v1/{route}");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ManagementToken);
        return await http.SendAsync(request);
    }

    /// <summary>
    /// Waits until every server computes responses with the same version, between <paramref name="minimum"/> and
    /// <paramref name="maximum"/>, and returns it.
    /// </summary>
    private static async Task<long> WaitForVersionAsync(
        HttpClient http, string[] servers, long minimum, List<ContinualServeProcess> processes, long maximum = long.MaxValue)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        long?[] served = new long?[servers.Length];
        while (!deadline.IsCancellationRequested)
        {
            for (int index = 0; index < servers.Length; index++)
            {
                served[index] = await ReplicaDistributionTests.ServedVersionAsync(http, servers[index]);
            }

            if (served.All(version => version >= minimum && version <= maximum && version == served[0]))
            {
                return served[0]!.Value;
            }

            processes.ShouldAllBe(process => !process.HasExited);
            await Task.Delay(200, CancellationToken.None);
        }

        throw new TimeoutException(
            $"Servers did not agree on a version from {minimum} to {maximum} within 60 s; they served {string.Join(", ", served)}.");
    }
}
