using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Management;

/// <summary>
/// HEAD on the management GET routes, and the order of the checks. The bearer token is checked before the method and
/// the path, so a client without a valid token gets 401 or 403 and learns no route or method from a 404 or 405.
/// </summary>
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

    [Theory]
    [InlineData("manage/v1/versions")]
    [InlineData("manage/v1/learning")]
    [InlineData("manage/v1/golden-set")]
    public async Task HeadWithoutTokenMatchesGet(string path)
    {
        await HeadResponses.ShouldMatchGetAsync(server.Management, path, HttpStatusCode.Unauthorized);
    }

    // Requests that routing alone rejects with 405 (a method that the path does not accept) or 404 (no such path).
    public static TheoryData<string, string, int, string?> WrongMethodsAndPaths => new()
    {
        { "POST", "manage/v1/versions", 405, "GET, HEAD" },
        { "DELETE", "manage/v1/versions", 405, "GET, HEAD" },
        { "PUT", "manage/v1/learning", 405, "GET, HEAD" },
        { "GET", "manage/v1/learning/pause", 405, "POST" },
        { "HEAD", "manage/v1/rollback", 405, "POST" },
        { "OPTIONS", "manage/v1/pin", 405, "DELETE" },
        { "GET", "manage/v1/no-such-route", 404, null },
        { "POST", "manage/v1", 404, null },
    };

    [Theory]
    [MemberData(nameof(WrongMethodsAndPaths))]
    public async Task TokenIsCheckedBeforeMethodAndPath(string method, string path, int statusWithToken, string? allow)
    {
        using HttpResponseMessage missing = await SendAsync(method, path, token: null);
        using HttpResponseMessage wrong = await SendAsync(method, path, token: ManagementServer.Token + "x");
        using HttpResponseMessage valid = await SendAsync(method, path, token: ManagementServer.Token);

        missing.StatusCode.ShouldBe(HttpStatusCode.Unauthorized, "without a token");
        missing.Headers.WwwAuthenticate.ToString().ShouldBe("Bearer");
        missing.Content.Headers.Allow.ShouldBeEmpty("Allow without a token");
        wrong.StatusCode.ShouldBe(HttpStatusCode.Forbidden, "with a wrong token");
        wrong.Content.Headers.Allow.ShouldBeEmpty("Allow with a wrong token");
        ((int)valid.StatusCode).ShouldBe(statusWithToken, "with the token");
        string.Join(", ", valid.Content.Headers.Allow).ShouldBe(allow ?? "", "Allow with the token");
        if (method != "HEAD")
        {
            (await ErrorFieldAsync(missing)).ShouldBe("Authorization");
            (await ErrorFieldAsync(wrong)).ShouldBe("Authorization");
        }
    }

    // The inference port keeps its 404 for every management path, token or not, so it does not reveal the API.
    [Theory]
    [InlineData("HEAD", "manage/v1/versions")]
    [InlineData("POST", "manage/v1/versions")]
    [InlineData("GET", "manage/v1/no-such-route")]
    public async Task InferencePortStillReturns404(string method, string path)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);

        using HttpResponseMessage response = await server.Inference.SendAsync(request);

        response.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        response.Headers.WwwAuthenticate.ShouldBeEmpty();
    }

    private async Task<HttpResponseMessage> SendAsync(string method, string path, string? token)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return await server.Management.SendAsync(request);
    }

    private static async Task<string?> ErrorFieldAsync(HttpResponseMessage response)
    {
        using JsonDocument body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return body.RootElement.GetProperty("field").GetString();
    }
}
