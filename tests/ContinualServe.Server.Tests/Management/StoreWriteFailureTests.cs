using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Management;

/// <summary>
/// Management requests whose write to the model store fails, as on a full or read-only volume. A directory takes the
/// place of each control file, so the write fails even for root.
/// </summary>
public sealed class StoreWriteFailureTests
{
    public static TheoryData<string, string, string> Writes => new()
    {
        { "PUT", "manage/v1/golden-set", GoldenSet.FileName },
        { "POST", "manage/v1/versions/2/promote", StoreControlFiles.PinnedVersionFileName },
        { "POST", "manage/v1/rollback", StoreControlFiles.PinnedVersionFileName },
        { "POST", "manage/v1/learning/pause", StoreControlFiles.LearningPausedFileName },
    };

    [Theory]
    [MemberData(nameof(Writes))]
    public async Task FailedWriteGets503WithJsonError(string method, string path, string blockedFile)
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 3, separatePort: false);
        string store = server.Store.RootDirectory;
        Directory.CreateDirectory(Path.Combine(store, blockedFile));
        double failuresBefore = ReliabilityMetrics.ManagementRequests.WithLabels("store_write_failed").Value;

        using HttpResponseMessage response = await server.Management.SendAsync(Request(method, path));

        response.StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        response.Content.Headers.ContentType?.MediaType.ShouldBe("application/json");
        using JsonDocument body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        string error = body.RootElement.GetProperty("error").GetString()!;
        error.ShouldStartWith($"Writing the model store {store} failed: ");
        body.RootElement.GetProperty("expected").GetString()!.ShouldContain("free space");
        server.App.Services.GetLiveVersion().ShouldBe(3, "a pin that was not written must not change the live version");
        Directory.GetFiles(store, ".*.tmp").ShouldBeEmpty();
        ReliabilityMetrics.ManagementRequests.WithLabels("store_write_failed").Value.ShouldBeGreaterThan(failuresBefore);
    }

    // Every management request that writes or removes a file in the store.
    public static TheoryData<string, string> StoreChanges => new()
    {
        { "PUT", "manage/v1/golden-set" },
        { "POST", "manage/v1/versions/2/promote" },
        { "POST", "manage/v1/rollback" },
        { "DELETE", "manage/v1/pin" },
        { "POST", "manage/v1/learning/pause" },
        { "POST", "manage/v1/learning/resume" },
        { "DELETE", "manage/v1/golden-set" },
    };

    [Theory]
    [MemberData(nameof(StoreChanges))]
    public async Task RemovedStoreIsNotCreatedAgain(string method, string path)
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 3, separatePort: false);
        string store = server.Store.RootDirectory;
        Directory.Move(store, store + "-moved");

        using HttpResponseMessage response = await server.Management.SendAsync(Request(method, path));

        response.StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        using JsonDocument body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        string error = body.RootElement.GetProperty("error").GetString()!;
        error.ShouldStartWith($"Writing the model store {store} failed: ");
        error.ShouldContain("no longer exists");
        body.RootElement.GetProperty("expected").GetString()!.ShouldContain("move the original store directory back");
        Directory.Exists(store).ShouldBeFalse("a write must not create a removed store directory again");
        server.App.Services.GetLiveVersion().ShouldBe(3);
    }

    // The management requests that read the store: a removed store must not give an empty 500.
    public static TheoryData<string> StoreReads => new()
    {
        "manage/v1/versions",
        "manage/v1/learning",
        "manage/v1/golden-set",
    };

    [Theory]
    [MemberData(nameof(StoreReads))]
    public async Task RemovedStoreReadGets503(string path)
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 3, separatePort: false);
        string store = server.Store.RootDirectory;
        Directory.Move(store, store + "-moved");
        double failuresBefore = ReliabilityMetrics.ManagementRequests.WithLabels("store_read_failed").Value;

        using HttpResponseMessage response = await server.Management.SendAsync(Request("GET", path));

        response.StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        response.Content.Headers.ContentType?.MediaType.ShouldBe("application/json");
        using JsonDocument body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        body.RootElement.GetProperty("error").GetString()!.ShouldStartWith($"Reading the model store {store} failed: ");
        body.RootElement.GetProperty("expected").GetString()!.ShouldContain("move the original store directory back");
        ReliabilityMetrics.ManagementRequests.WithLabels("store_read_failed").Value.ShouldBeGreaterThan(failuresBefore);
        Directory.Exists(store).ShouldBeFalse("a read must not create a removed store directory again");
    }

    // A dashboard that polls a removed store must not log the same error at every request.
    [Fact]
    public async Task RepeatedReadFailureIsLoggedOnce()
    {
        var logs = new RecordingLoggerProvider(LogLevel.Error);
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false, logs: logs);
        Directory.Move(server.Store.RootDirectory, server.Store.RootDirectory + "-moved");

        for (int index = 0; index < 3; index++)
        {
            using HttpResponseMessage response = await server.Management.SendAsync(Request("GET", "manage/v1/versions"));
            response.StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        }

        logs.Recorder.Entries.Count(entry => entry.EventId == 412).ShouldBe(1);
    }

    [Theory]
    [MemberData(nameof(StoreChanges))]
    public async Task ReplacedStoreIsNotWritten(string method, string path)
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 3, separatePort: false);
        string store = server.Store.RootDirectory;
        Directory.Move(store, store + "-moved");
        Directory.CreateDirectory(store);

        using HttpResponseMessage response = await server.Management.SendAsync(Request(method, path));

        response.StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        using JsonDocument body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        body.RootElement.GetProperty("error").GetString()!.ShouldContain("was replaced by another directory");
        Directory.EnumerateFileSystemEntries(store).ShouldBeEmpty("nothing may be written into a directory that replaced the store");
        server.App.Services.GetLiveVersion().ShouldBe(3);
    }

    [Fact]
    public async Task ResetUploadIsNoWriteFailure()
    {
        // A reset mid-upload makes the body read raise ConnectionResetException. That is an IOException, as a failed
        // write is, but the store was never written and its volume is fine.
        const int Resets = 4;
        var logs = new RecordingLoggerProvider(LogLevel.Information);
        await using ManagementServer server = await ManagementServer.StartAsync(
            versions: 1, separatePort: false, logs: logs, extraArguments: "--Logging:LogLevel:ContinualServe.Server.Management=Information");

        for (int index = 0; index < Resets; index++)
        {
            await ResetMidUploadAsync(server);
        }

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (AuditEntries(logs).Count < Resets && !deadline.IsCancellationRequested)
        {
            await Task.Delay(50, CancellationToken.None);
        }

        // On a loaded machine a reset can come before the server dispatches the request, which then never runs.
        AuditEntries(logs).ShouldNotBeEmpty("audited golden-set uploads");
        // An upload that arrives while the previous reset's handler still runs gets 409, because uploads run one at a time.
        AuditEntries(logs).ShouldContain(entry => entry.EndsWith("returned 400", StringComparison.Ordinal));
        AuditEntries(logs).ShouldAllBe(entry => entry.EndsWith("returned 400", StringComparison.Ordinal) || entry.EndsWith("returned 409", StringComparison.Ordinal));
        logs.Recorder.Entries.ShouldNotContain(entry => entry.EventId == 482, "store write failures logged");
        logs.Recorder.Entries.ShouldNotContain(entry => entry.Level >= LogLevel.Error, "error log entries");
        File.Exists(Path.Combine(server.Store.RootDirectory, GoldenSet.FileName)).ShouldBeFalse();
    }

    private static List<string> AuditEntries(RecordingLoggerProvider logs) =>
        [.. logs.Recorder.Entries.Where(entry => entry.EventId == 440).Select(entry => entry.Message)];

    // Sends the headers and the first 32 KiB of a longer golden set, then resets the connection (RST).
    private static async Task ResetMidUploadAsync(ManagementServer server)
    {
        byte[] start = Encoding.UTF8.GetBytes("{\"examples\":[{\"label\":0,\"features\":[" + new string(' ', 32 * 1024));
        using var client = new TcpClient();
        await client.ConnectAsync(server.Management.BaseAddress!.Host, server.Management.BaseAddress.Port);
        NetworkStream stream = client.GetStream();
        string head = "PUT /manage/v1/golden-set HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + $"Authorization: Bearer {ManagementServer.Token}\r\nContent-Length: {512 * 1024}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        await stream.WriteAsync(start);
        await stream.FlushAsync();
        await Task.Delay(200);

        // A zero timeout closes the socket with a reset. TcpClient.Close would shut it down in order first.
        client.Client.Close(timeout: 0);
    }

    private static HttpRequestMessage Request(string method, string path)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ManagementServer.Token);
        if (method == "PUT")
        {
            int features = RunningServer.Spec.FeatureCount;
            var set = new { examples = new[] { new { label = 0, features = new float[features] } } };
            request.Content = new StringContent(JsonSerializer.Serialize(set), Encoding.UTF8, "application/json");
        }

        return request;
    }
}
