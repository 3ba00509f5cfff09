using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
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
