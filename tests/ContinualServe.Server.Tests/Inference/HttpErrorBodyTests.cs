using System.Net;
using System.Text.Json;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

/// <summary>Status codes that routing or Kestrel choose before the inference handler runs: 404, 405 and 431.</summary>
public sealed class HttpErrorBodyTests : IAsyncLifetime
{
    private const string InferPath = "v2/models/test-model/infer";
    private RunningServer server = null!;

    public async Task InitializeAsync() => server = await RunningServer.StartAsync();

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Theory]
    [InlineData("GET", InferPath, "POST")]
    [InlineData("PUT", InferPath, "POST")]
    [InlineData("DELETE", "v2/models/test-model/versions/1/infer", "POST")]
    [InlineData("POST", "v2/health/live", "GET, HEAD")]
    [InlineData("POST", "v2/models/test-model/ready", "GET, HEAD")]
    [InlineData("OPTIONS", "v2/models/test-model", "GET, HEAD")]
    [InlineData("OPTIONS", "v2/models/test-model/versions/1", "GET, HEAD")]
    [InlineData("OPTIONS", InferPath, "POST")]
    [InlineData("OPTIONS", "v1/models/test-model", "GET, HEAD")]
    [InlineData("POST", "v1/models/test-model", "GET, HEAD")]
    [InlineData("DELETE", "v1/models/test-model", "GET, HEAD")]
    [InlineData("OPTIONS", "v1/models/test-model:predict", "POST")]
    [InlineData("PUT", "v1/models/test-model:predict", "POST")]
    public async Task WrongMethodGets405WithJson(string method, string path, string allowed)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);

        using HttpResponseMessage response = await server.Client.SendAsync(request);

        response.StatusCode.ShouldBe(HttpStatusCode.MethodNotAllowed);
        response.Content.Headers.Allow.ShouldBe(allowed.Split(", "));
        response.Content.Headers.ContentType.ShouldNotBeNull().MediaType.ShouldBe("application/json");
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        string message = error.RootElement.GetProperty("error").GetString()!;
        message.ShouldContain(method);
        message.ShouldContain("/" + path);
        error.RootElement.GetProperty("field").GetString().ShouldBe("method");
        error.RootElement.GetProperty("expected").GetString().ShouldBe(allowed);
    }

    [Theory]
    [InlineData("GET", "v2/health/ready")]
    [InlineData("GET", "v3/models")]
    [InlineData("GET", "ui/")]
    [InlineData("POST", "v2/health/live")]
    public async Task ResponsesForbidSniffing(string method, string path)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);

        using HttpResponseMessage response = await server.Client.SendAsync(request);

        response.Headers.GetValues("X-Content-Type-Options").ShouldBe(["nosniff"], $"{method} {path} ({(int)response.StatusCode})");
    }

    [Fact]
    public async Task MetricsAnswerOnlyGet()
    {
        using HttpResponseMessage get = await server.Client.GetAsync("metrics");
        using HttpResponseMessage post = await server.Client.PostAsync("metrics", new StringContent(""));

        get.StatusCode.ShouldBe(HttpStatusCode.OK);
        post.StatusCode.ShouldBe(HttpStatusCode.MethodNotAllowed);
        post.Content.Headers.Allow.ShouldBe(["GET", "HEAD"]);
    }

    [Theory]
    [InlineData("GET", "v3/models")]
    [InlineData("POST", "v2/models/test-model/infer/extra")]
    public async Task UnknownPathGets404WithJson(string method, string path)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);

        using HttpResponseMessage response = await server.Client.SendAsync(request);

        response.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        response.Content.Headers.ContentType.ShouldNotBeNull().MediaType.ShouldBe("application/json");
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        error.RootElement.GetProperty("error").GetString()!.ShouldContain("No route matches /" + path);
    }

    [Fact]
    public async Task ManagementPathWithoutTokenExplains()
    {
        using HttpResponseMessage response = await server.Client.GetAsync("manage/v1/versions");

        response.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        string message = error.RootElement.GetProperty("error").GetString()!;
        message.ShouldContain("No route matches /manage/v1/versions");
        message.ShouldContain("management API is off");
        message.ShouldContain("--management-token-file");
    }

    [Fact]
    public async Task UnknownModelKeepsItsOwnError()
    {
        using HttpResponseMessage response = await server.Client.GetAsync("v2/models/other-model");

        response.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        error.RootElement.GetProperty("error").GetString()!.ShouldContain("'other-model' is not served here");
    }

    [Theory]
    [InlineData("POST", InferPath, "{", "application/json", HttpStatusCode.BadRequest)]
    [InlineData("POST", InferPath, "{}", "text/plain", HttpStatusCode.UnsupportedMediaType)]
    [InlineData("POST", "v2/models/other-model/infer", "{}", "application/json", HttpStatusCode.NotFound)]
    [InlineData("GET", InferPath, null, null, HttpStatusCode.MethodNotAllowed)]
    [InlineData("GET", "v3", null, null, HttpStatusCode.NotFound)]
    public async Task ErrorContentTypeHasNoCharset(string method, string path, string? body, string? contentType, HttpStatusCode expected)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (body is not null)
        {
            request.Content = new StringContent(body, System.Text.Encoding.UTF8, contentType!);
        }

        using HttpResponseMessage response = await server.Client.SendAsync(request);

        response.StatusCode.ShouldBe(expected);
        // The KServe Python client reads the error text only when Content-Type is exactly application/json.
        response.Content.Headers.ContentType.ShouldNotBeNull().ToString().ShouldBe("application/json");
    }

    [Fact]
    public async Task OversizedHeadersGet431()
    {
        await using RunningServer limited = await RunningServer.StartAsync(arguments: "--HttpLimits:MaxRequestHeadersTotalBytes=4096");

        using HttpRequestMessage smallRequest = RequestWithHeader(1024);
        using HttpRequestMessage largeRequest = RequestWithHeader(8 * 1024);

        using HttpResponseMessage small = await limited.Client.SendAsync(smallRequest);
        using HttpResponseMessage large = await limited.Client.SendAsync(largeRequest);

        small.StatusCode.ShouldBe(HttpStatusCode.OK);
        // Kestrel rejects the request while parsing its headers, before any middleware runs, so the body stays empty.
        large.StatusCode.ShouldBe(HttpStatusCode.RequestHeaderFieldsTooLarge);
    }

    private static HttpRequestMessage RequestWithHeader(int paddingBytes)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, InferPath) { Content = InferenceRequests.Json(InferenceRequests.Body(1, 16)) };
        request.Headers.Add("X-Padding", new string('x', paddingBytes));
        return request;
    }
}
