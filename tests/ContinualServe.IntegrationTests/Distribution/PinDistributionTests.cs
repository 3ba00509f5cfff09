using System.Globalization;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>Pins in model stores that servers find when they start, with real child processes of the built executable.</summary>
public sealed class PinDistributionTests(ITestOutputHelper testOutput) : ChildProcessTests(testOutput)
{
    [Fact]
    public async Task ReplicaKeepsPinWhileBrokerIsDown()
    {
        // A replica that restarts while no broker responds has not read the learner's pin record yet, so the pin in
        // its own store is the best record of the operator's decision.
        string store = Path.Combine(Root, "replica");
        SaveVersions(store, count: 2);
        StoreControlFiles.WritePinnedVersion(store, 1);
        string unreachable = "127.0.0.1:" + ContinualServeProcess.FreePort().ToString(CultureInfo.InvariantCulture);
        string url = await StartProcessAsync("replica", listenUrl =>
            ["serve", "--urls", listenUrl, "--store", store, "--device", "cpu", "--bootstrap-servers", unreachable]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };

        (await WaitForServedVersionAsync(http, url)).ShouldBe(1);
        for (int sample = 0; sample < 15; sample++)
        {
            await Task.Delay(200);
            (await ReplicaDistributionTests.ServedVersionAsync(http, url)).ShouldBe(1, $"sample {sample} after the replica became ready");
        }

        StoreControlFiles.ReadPinnedVersion(store).ShouldBe(1);
    }

    [Fact]
    public async Task AllRoleStartsWithUnreadablePin()
    {
        string store = Path.Combine(Root, "all");
        Directory.CreateDirectory(store);
        await File.WriteAllTextAsync(Path.Combine(store, StoreControlFiles.PinnedVersionFileName), "not-a-version");
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        string url = await StartAllRoleAsync(broker, store);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };

        (await WaitForServedVersionAsync(http, url)).ShouldBe(1);
        Processes[0].OutputTail.ShouldContain("not-a-version");
    }

    // A promote or unpin sent to a serve process on the learner's volume changes only the pin file. The all role polls no
    // store, so its own server must follow the pin without waiting for the learner's next version.
    [Fact]
    public async Task AllRoleFollowsPinFromAnotherServer()
    {
        string store = Path.Combine(Root, "all");
        SaveVersions(store, count: 2);
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        string url = await StartAllRoleAsync(broker, store);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        (await WaitForServedVersionAsync(http, url)).ShouldBe(2);

        StoreControlFiles.WritePinnedVersion(store, 1);
        long? pinned = await WaitForVersionAsync(http, url, 1);
        StoreControlFiles.ClearPinnedVersion(store);
        long? unpinned = await WaitForVersionAsync(http, url, 2);

        pinned.ShouldBe(1, "the all role did not serve the version pinned in its store");
        unpinned.ShouldBe(2, "the all role did not serve the newest version after the pin was removed");
    }

    // A pinned version whose spec names other layer sizes than its weights have is corrupt. Before the store compared
    // tensor shapes with the spec, loading it threw ArgumentException inside the pin watch. The watch must skip it with
    // a warning and keep running, so the next pin is still served.
    [Fact]
    public async Task AllRolePinWatchSkipsMisfitPin()
    {
        string store = Path.Combine(Root, "all");
        SaveVersions(store, count: 3);
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        string url = await StartAllRoleAsync(broker, store);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        (await WaitForServedVersionAsync(http, url)).ShouldBe(3);
        BreakSpec(store, version: 1);

        StoreControlFiles.WritePinnedVersion(store, 1);
        bool logged = await WaitForLogAsync("The pin was not announced to replicas: pinned version 1 is missing or corrupt");
        StoreControlFiles.WritePinnedVersion(store, 2);
        long? served = await WaitForVersionAsync(http, url, 2);

        served.ShouldBe(2, "the all role did not serve the pin written after the misfit one");
        logged.ShouldBeTrue("the pin watch did not report the misfit pin");
        Processes[0].HasExited.ShouldBeFalse();
        Processes[0].OutputTail.ShouldNotContain("unexpected error");
    }

    // The same misfit version in a serve process reaches its store poller, which must skip it and keep the host running.
    [Fact]
    public async Task StorePollerSkipsMisfitPin()
    {
        string store = Path.Combine(Root, "serve");
        SaveVersions(store, count: 3);
        string url = await StartProcessAsync("serve", listenUrl => ["serve", "--urls", listenUrl, "--store", store, "--device", "cpu"]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        (await WaitForServedVersionAsync(http, url)).ShouldBe(3);
        BreakSpec(store, version: 1);

        StoreControlFiles.WritePinnedVersion(store, 1);
        bool logged = await WaitForLogAsync("Pinned version 1 is missing or corrupt");
        StoreControlFiles.WritePinnedVersion(store, 2);
        long? served = await WaitForVersionAsync(http, url, 2);

        Processes[0].HasExited.ShouldBeFalse("the server stopped after a misfit version was pinned");
        served.ShouldBe(2, "the server did not serve the pin written after the misfit one");
        logged.ShouldBeTrue("the store poller did not report the misfit pin");
        Processes[0].OutputTail.ShouldNotContain("unexpected error");
    }

    // A kill between saving a version and writing its checkpoint leaves that version in the store, but the learner
    // continues from the checkpoint's version and announces only that one. The all role's server must serve what the
    // learner announces, as the replicas do, even after its pin watch runs.
    [Fact]
    public async Task AllRoleSkipsVersionAheadOfCheckpoint()
    {
        string store = Path.Combine(Root, "all");
        SaveVersions(store, count: 1);
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(ReplicaDistributionTests.ExampleTopic, 1);
        broker.CreateTopic("model-versions", 1);
        string[] Arguments(string listenUrl) =>
        [
            "all", "--urls", listenUrl, "--bootstrap-servers", broker.BootstrapServers, "--topic", ReplicaDistributionTests.ExampleTopic,
            "--store", store, "--device", "cpu", "--store-url", listenUrl,
        ];
        (ContinualServeProcess first, string url) = await ContinualServeProcess.StartOnFreePortAsync("all", Root, "http", Arguments);
        Processes.Add(first);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        (await WaitForServedVersionAsync(http, url)).ShouldBe(1);
        (await WaitForLogAsync("Announced that no version of")).ShouldBeTrue("the first all process did not start its pin watch");
        await Processes[0].DisposeAsync();
        Processes.Clear();
        Directory.EnumerateDirectories(Path.Combine(store, "learner-checkpoint")).ShouldNotBeEmpty();

        SaveVersions(store, count: 1);
        // NOTE: the restart reuses the first process's port, which another socket could take after the kill.
        Processes.Add(ContinualServeProcess.Start("all-restarted", Root, Arguments(url)));

        (await WaitForServedVersionAsync(http, url)).ShouldBe(1);
        (await WaitForLogAsync("Announced that no version of")).ShouldBeTrue("the restarted all process did not start its pin watch");
        for (int sample = 0; sample < 10; sample++)
        {
            await Task.Delay(200);
            (await ReplicaDistributionTests.ServedVersionAsync(http, url)).ShouldBe(1, $"sample {sample} after the pin watch started");
        }
    }

    [Fact]
    public async Task ReplicaSurvivesUnreadableLocalPin()
    {
        // The subscriber reads the replica's own pin file on every pass. An unreadable one must not stop the replica.
        string store = Path.Combine(Root, "replica");
        SaveVersions(store, count: 2);
        await File.WriteAllTextAsync(Path.Combine(store, StoreControlFiles.PinnedVersionFileName), "not-a-version");
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("model-versions", 1);
        string url = await StartProcessAsync("replica", listenUrl =>
            ["serve", "--urls", listenUrl, "--store", store, "--device", "cpu", "--bootstrap-servers", broker.BootstrapServers]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };

        (await WaitForServedVersionAsync(http, url)).ShouldBe(2);
        (await WaitForLogAsync("model-versions up to its end")).ShouldBeTrue("the subscriber did not read the topic to its end");
        await Task.Delay(1000);
        Processes[0].HasExited.ShouldBeFalse(Processes[0].OutputTail);
        (await ReplicaDistributionTests.ServedVersionAsync(http, url)).ShouldBe(2);
    }

    [Fact]
    public async Task UnpinServesPinnedUntilNewestArrives()
    {
        // Version 3 is the one an operator rolled back from. The learner has since announced version 4, which cannot be
        // downloaded yet, so the replica must stay on the pinned version 2 and never serve 3.
        string store = Path.Combine(Root, "replica");
        SaveVersions(store, count: 3);
        StoreControlFiles.WritePinnedVersion(store, 2);
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("model-versions", 1);
        string unreachableStore = "http://127.0.0.1:" + ContinualServeProcess.FreePort().ToString(CultureInfo.InvariantCulture);
        using (var publisher = new ModelVersionPublisher(
            broker.BootstrapServers, new DistributionOptions { StoreUrl = unreachableStore }, NullLogger<ModelVersionPublisher>.Instance))
        {
            ModelVersionAnnouncement newest = ModelVersionAnnouncement.From(new ModelStore(store).TryLoadLatest()!, unreachableStore) with { Version = 4 };
            publisher.Publish(newest);
            publisher.PublishPin(newest.ModelName, pinned: null);
            publisher.Flush(TimeSpan.FromSeconds(10)).ShouldBe(0);
        }

        string url = await StartProcessAsync("replica", listenUrl =>
        [
            "serve", "--urls", listenUrl, "--store", store, "--device", "cpu", "--bootstrap-servers", broker.BootstrapServers,
            "--Distribution:RetryDelay=00:00:00.200", "--Distribution:MaxRetryDelay=00:00:00.500",
        ]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };

        (await WaitForServedVersionAsync(http, url)).ShouldBe(2);
        (await WaitForLogAsync("The learner removed the pin of version 2")).ShouldBeTrue("the replica did not read the unpin record");
        (await WaitForLogAsync("Download of version 4")).ShouldBeTrue("the replica did not try to download the newest version");
        for (int sample = 0; sample < 10; sample++)
        {
            (await ReplicaDistributionTests.ServedVersionAsync(http, url)).ShouldBe(2, $"sample {sample} after the unpin");
            await Task.Delay(100);
        }

        StoreControlFiles.ReadPinnedVersion(store).ShouldBeNull();
        (await WaitForLogAsync("Download of version 4 from " + unreachableStore + " failed (attempt 2)")).ShouldBeTrue();
        Processes[0].OutputTail.Split('\n').Count(line => line.Contains("failed (attempt 1)", StringComparison.Ordinal))
            .ShouldBe(1, "each failed attempt is counted once");
    }

    // Starts the all role on store with the example and version topics on broker, and returns its URL.
    private async Task<string> StartAllRoleAsync(EmbeddedKafkaBroker broker, string store)
    {
        broker.CreateTopic(ReplicaDistributionTests.ExampleTopic, 1);
        broker.CreateTopic("model-versions", 1);
        (ContinualServeProcess all, string url) = await ContinualServeProcess.StartOnFreePortAsync("all", Root, "http", listenUrl =>
        [
            "all", "--urls", listenUrl, "--bootstrap-servers", broker.BootstrapServers, "--topic", ReplicaDistributionTests.ExampleTopic,
            "--store", store, "--device", "cpu", "--store-url", listenUrl,
        ]);
        Processes.Add(all);
        return url;
    }

    // Starts a child that listens on a port the kernel picks, keeps it for disposal, and returns its URL.
    private async Task<string> StartProcessAsync(string name, Func<string, string[]> arguments)
    {
        (ContinualServeProcess child, string url) = await ContinualServeProcess.StartOnAnyPortAsync(name, Root, "http", arguments);
        Processes.Add(child);
        return url;
    }

    private async Task<bool> WaitForLogAsync(string text)
    {
        using var deadline = new CancellationTokenSource(StartTimeout);
        while (!deadline.IsCancellationRequested && !Processes[0].OutputTail.Contains(text, StringComparison.Ordinal))
        {
            await Task.Delay(200, CancellationToken.None);
        }

        return Processes[0].OutputTail.Contains(text, StringComparison.Ordinal);
    }

    // Rewrites a version's spec with hidden layers of another size, so that its weights no longer fit the model it builds.
    private static void BreakSpec(string directory, long version)
    {
        string spec = Path.Combine(new ModelStore(directory).VersionDirectory(version), ModelStore.SpecFileName);
        File.WriteAllText(spec, new ModelSpec { HiddenSizes = [128, 128] }.ToJson());
    }

    /// <summary>Saves <paramref name="count"/> untrained versions of the default model, numbered from 1.</summary>
    private static void SaveVersions(string directory, int count)
    {
        var store = new ModelStore(directory);
        var spec = new ModelSpec();
        for (int index = 0; index < count; index++)
        {
            torch.manual_seed(index);
            using nn.Module<Tensor, Tensor> module = ModelFactory.Create(spec);
            store.Save(spec, module, new ModelManifest());
        }
    }

    // Polls until the server serves expected, for at most 10 s, and returns the last version served.
    private static async Task<long?> WaitForVersionAsync(HttpClient http, string url, long expected)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        long? served = null;
        while (!deadline.IsCancellationRequested && served != expected)
        {
            await Task.Delay(200, CancellationToken.None);
            served = await ReplicaDistributionTests.ServedVersionAsync(http, url);
        }

        return served;
    }

    private async Task<long> WaitForServedVersionAsync(HttpClient http, string url)
    {
        using var deadline = new CancellationTokenSource(StartTimeout);
        while (!deadline.IsCancellationRequested)
        {
            if (await ReplicaDistributionTests.ServedVersionAsync(http, url) is long version)
            {
                return version;
            }

            Processes.ShouldAllBe(process => !process.HasExited, "a server exited before it served a version");
            await Task.Delay(200, CancellationToken.None);
        }

        throw new TimeoutException($"{url} served no version within {StartTimeout.TotalSeconds} s.");
    }
}
