using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Management;

/// <summary>HEAD on the management GET routes: the status code and headers of GET, without a body.</summary>
public sealed class ManagementMethodTests : IAsyncLifetime
{
    private ManagementServer server = null!;

    public async Task InitializeAsync() => server = await ManagementServer.StartAsync(versions: 2, separatePort: true);

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Theory]
    [InlineData("manage/v1/versions", HttpStatusCode.OK)]
    [InlineData("manage/v1/learning", HttpStatusCode.OK)]
    [InlineData("manage/v1/golden-set", HttpStatusCode.NotFound)]
    public async Task HeadMatchesGetWithToken(string path, HttpStatusCode expected)
    {
        await HeadResponses.ShouldMatchGetAsync(server.Management, path, expected, bearerToken: ManagementServer.Token);
    }

    [Fact]
    public async Task HeadMatchesGetOnStoredGoldenSet()
    {
        int features = RunningServer.Spec.FeatureCount;
        string json = JsonSerializer.Serialize(new { examples = new[] { new { label = 1, features = new float[features] } } });
        using var upload = new HttpRequestMessage(HttpMethod.Put, "manage/v1/golden-set")
        {
            Content = new StringContent(json, Encoding.UTF8, "application/json"),
        };
        upload.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ManagementServer.Token);
        using HttpResponseMessage uploaded = await server.Management.SendAsync(upload);
        uploaded.StatusCode.ShouldBe(HttpStatusCode.OK, await uploaded.Content.ReadAsStringAsync());

        await HeadResponses.ShouldMatchGetAsync(server.Management, "manage/v1/golden-set", HttpStatusCode.OK, bearerToken: ManagementServer.Token);
    }
}
