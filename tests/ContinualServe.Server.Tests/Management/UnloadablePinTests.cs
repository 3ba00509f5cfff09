using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Server.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Management;

/// <summary>
/// A server whose pinned version is corrupt: it serves no other version on its own, stays unready when nothing is
/// live, and reports why in its log and in GET /manage/v1/versions.
/// </summary>
public sealed class UnloadablePinTests
{
    [Fact]
    public async Task CorruptPinKeepsServerUnreadyAndExplains()
    {
        string directory = StoreWithCorruptPin(versions: 2, pinned: 2);
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 0, separatePort: false, storeDirectory: directory);

        using HttpResponseMessage ready = await server.Inference.GetAsync("v2/health/ready");
        JsonElement listed = await SendAsync(server, HttpMethod.Get, "manage/v1/versions");

        ready.StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        listed.GetProperty("live").ValueKind.ShouldBe(JsonValueKind.Null);
        listed.GetProperty("pinned").GetInt64().ShouldBe(2);
        listed.TryGetProperty("pinError", out JsonElement pinErrorProperty).ShouldBeTrue("GET /manage/v1/versions has no pinError");
        string pinError = pinErrorProperty.GetString().ShouldNotBeNull();
        pinError.ShouldContain("Pinned version 2 is missing or corrupt");
        pinError.ShouldContain("stays unready");
        pinError.ShouldContain("DELETE /manage/v1/pin");

        string features = string.Join(',', new float[RunningServer.Spec.FeatureCount]);
        using HttpResponseMessage infer = await server.Inference.PostAsync(
            $"v2/models/{RunningServer.Spec.Name}/infer",
            new StringContent($"{{\"inputs\":[{{\"name\":\"input\",\"shape\":[1,{RunningServer.Spec.FeatureCount}],\"datatype\":\"FP32\",\"data\":[{features}]}}]}}", System.Text.Encoding.UTF8, "application/json"));
        infer.StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        (await infer.Content.ReadAsStringAsync()).ShouldContain("pinned version 2 is missing or corrupt", Case.Insensitive, "a client must not be told to wait for a version that cannot load");
        using HttpResponseMessage metadata = await server.Inference.GetAsync($"v2/models/{RunningServer.Spec.Name}");
        metadata.StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        (await metadata.Content.ReadAsStringAsync()).ShouldContain("pinned version 2 is missing or corrupt", Case.Insensitive, "the metadata route must name the pin too");

        JsonElement unpinned = await SendAsync(server, HttpMethod.Delete, "manage/v1/pin");
        using HttpResponseMessage readyAfterUnpin = await server.Inference.GetAsync("v2/health/ready");

        unpinned.GetProperty("live").GetInt64().ShouldBe(1);
        readyAfterUnpin.StatusCode.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public void CorruptPinIsLoggedOncePerState()
    {
        string directory = StoreWithCorruptPin(versions: 2, pinned: 2);
        var logger = new LogRecorder<ModelSwapper>();
        var storeLogger = new LogRecorder<ModelStore>();
        using var live = new LiveModel();
        var swapper = new ModelSwapper(
            live,
            Options.Create(new ServerOptions { ModelName = RunningServer.Spec.Name, StoreDirectory = directory }),
            logger,
            storeLogger);

        swapper.TrySwapToLatest().ShouldBeFalse();
        swapper.TrySwapToLatest().ShouldBeFalse();

        live.CurrentVersion.ShouldBeNull();
        logger.Entries.Count.ShouldBe(1);
        logger.Entries[0].EventId.ShouldBe(403);
        logger.Entries[0].Message.ShouldContain("Pinned version 2 is missing or corrupt");
        logger.Entries[0].Message.ShouldContain("no version is served and the server stays unready");
        storeLogger.Entries.Select(entry => entry.EventId).ShouldBe([101], "the store logs the corrupt version once");
    }

    [Fact]
    public void PinnedFirstVersionIsLoggedAsFirst()
    {
        string directory = StoreWithCorruptPin(versions: 2, pinned: 2);
        StoreControlFiles.WritePinnedVersion(directory, 1);
        var logger = new LogRecorder<ModelSwapper>(LogLevel.Information);
        using var live = new LiveModel();
        var swapper = new ModelSwapper(
            live,
            Options.Create(new ServerOptions { ModelName = RunningServer.Spec.Name, StoreDirectory = directory }),
            logger);

        swapper.TrySwapToLatest().ShouldBeTrue();

        live.CurrentVersion.ShouldBe(1);
        logger.Entries.Select(entry => entry.EventId).ShouldBe([401], "a pinned version that is the first one loaded is not a swap from version 0");
    }

    // A store with versions 1 to versions, the pinned one with one flipped byte in its weights.
    private static string StoreWithCorruptPin(int versions, long pinned)
    {
        string directory = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
        var store = new ModelStore(directory, retainedVersions: 100);
        for (int version = 1; version <= versions; version++)
        {
            RunningServer.SaveVersion(store, version);
        }

        string weights = Path.Combine(store.VersionDirectory(pinned), ModelStore.WeightsFileName);
        byte[] bytes = File.ReadAllBytes(weights);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.WriteAllBytes(weights, bytes);
        StoreControlFiles.WritePinnedVersion(directory, pinned);
        return directory;
    }

    private static async Task<JsonElement> SendAsync(ManagementServer server, HttpMethod method, string path)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ManagementServer.Token);
        using HttpResponseMessage response = await server.Management.SendAsync(request);
        string body = await response.Content.ReadAsStringAsync();
        response.StatusCode.ShouldBe(HttpStatusCode.OK, $"{method} {path}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }
}
