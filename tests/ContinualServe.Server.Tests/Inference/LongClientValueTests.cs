using System.Net;
using System.Text;
using System.Text.Json;
using ContinualServe.Server.Inference;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

/// <summary>
/// Error messages that repeat an invalid value from the request repeat only its first characters and its length, so
/// that a client cannot make the server write a megabyte value back into an error body.
/// </summary>
public sealed class LongClientValueTests : IAsyncLifetime
{
    private const string InferPath = "v2/models/test-model/infer";
    private const string PredictPath = "v1/models/test-model:predict";
    private const string Placeholder = "LONG";

    // Kestrel limits the request line to 8 KiB, so path segments and headers stay below that. Bodies go up to 1 MiB here.
    private static readonly string LongSegment = new('x', 4_000);
    private static readonly string LongBodyValue = new('x', 100_000);

    // The maximum length of these messages, with the value truncated, is about 200 characters.
    private const int MaxMessageLength = 400;

    private RunningServer server = null!;

    public async Task InitializeAsync() => server = await RunningServer.StartAsync(maxRequestBodyBytes: 1024 * 1024);

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Theory]
    [InlineData("POST", "v2/models/LONG/infer", HttpStatusCode.NotFound)]
    [InlineData("GET", "v2/models/LONG", HttpStatusCode.NotFound)]
    [InlineData("GET", "v2/models/LONG/ready", HttpStatusCode.NotFound)]
    [InlineData("GET", "v2/models/test-model/versions/LONG", HttpStatusCode.BadRequest)]
    [InlineData("POST", "v2/models/test-model/versions/LONG/infer", HttpStatusCode.BadRequest)]
    [InlineData("GET", "v1/models/LONG", HttpStatusCode.NotFound)]
    [InlineData("POST", "v1/models/LONG:predict", HttpStatusCode.NotFound)]
    public async Task LongPathSegmentIsTruncated(string method, string path, HttpStatusCode expected)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path.Replace(Placeholder, LongSegment, StringComparison.Ordinal));

        using HttpResponseMessage response = await server.Client.SendAsync(request);

        await ShouldRepeatTruncatedAsync(response, expected, LongSegment);
    }

    // The routing errors repeat the whole path.
    [Theory]
    [InlineData("GET", "v3/LONG", HttpStatusCode.NotFound)]
    [InlineData("POST", "v2/models/LONG/ready", HttpStatusCode.MethodNotAllowed)]
    public async Task LongUnroutedPathIsTruncated(string method, string path, HttpStatusCode expected)
    {
        string longPath = path.Replace(Placeholder, LongSegment, StringComparison.Ordinal);
        using var request = new HttpRequestMessage(new HttpMethod(method), longPath);

        using HttpResponseMessage response = await server.Client.SendAsync(request);

        await ShouldRepeatTruncatedAsync(response, expected, "/" + longPath);
    }

    // Leading zeros make a version segment of any length that still parses, so it reaches the 404 that names it.
    [Fact]
    public async Task LongMissingVersionIsTruncated()
    {
        string version = new string('0', 4_000) + "2";

        using HttpResponseMessage metadata = await server.Client.GetAsync($"v2/models/test-model/versions/{version}");
        using HttpResponseMessage infer = await server.Client.PostAsync($"v2/models/test-model/versions/{version}/infer", InferenceRequests.Json(InferenceRequests.Body(1, 16)));

        await ShouldRepeatTruncatedAsync(metadata, HttpStatusCode.NotFound, version);
        await ShouldRepeatTruncatedAsync(infer, HttpStatusCode.NotFound, version);
    }

    [Theory]
    [InlineData(InferPath, "text/LONG", "text/LONG")]
    [InlineData(PredictPath, "text/LONG", "text/LONG")]
    [InlineData(InferPath, "application/json; charset=LONG", "LONG")]
    public async Task LongContentTypeIsTruncated(string path, string contentType, string repeated)
    {
        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes(InferenceRequests.Body(1, 16)));
        content.Headers.TryAddWithoutValidation("Content-Type", contentType.Replace(Placeholder, LongSegment, StringComparison.Ordinal)).ShouldBeTrue();

        using HttpResponseMessage response = await server.Client.PostAsync(path, content);

        await ShouldRepeatTruncatedAsync(response, HttpStatusCode.UnsupportedMediaType, repeated.Replace(Placeholder, LongSegment, StringComparison.Ordinal));
    }

    [Fact]
    public async Task LongBinaryHeaderLengthIsTruncated()
    {
        string header = new('9', 4_000);
        using var request = new HttpRequestMessage(HttpMethod.Post, InferPath) { Content = InferenceRequests.Json(InferenceRequests.Body(1, 16)) };
        request.Headers.TryAddWithoutValidation(InferenceApi.BinaryHeaderName, header).ShouldBeTrue();

        using HttpResponseMessage response = await server.Client.SendAsync(request);

        await ShouldRepeatTruncatedAsync(response, HttpStatusCode.BadRequest, header);
    }

    [Fact]
    public async Task LongMethodIsTruncated()
    {
        using var request = new HttpRequestMessage(new HttpMethod(LongSegment.ToUpperInvariant()), "v2/health/live");

        using HttpResponseMessage response = await server.Client.SendAsync(request);

        await ShouldRepeatTruncatedAsync(response, HttpStatusCode.MethodNotAllowed, LongSegment.ToUpperInvariant());
    }

    [Theory]
    [InlineData("\"datatype\":\"FP32\"", "\"datatype\":\"LONG\"")]
    [InlineData("\"name\":\"input\"", "\"name\":\"LONG\"")]
    [InlineData("\"id\":\"r1\"", "\"id\":\"r1\",\"outputs\":[{\"name\":\"LONG\"}]")]
    public async Task LongInferFieldIsTruncated(string field, string replacement)
    {
        string body = InferenceRequests.Body(1, 16).Replace(field, replacement.Replace(Placeholder, LongBodyValue, StringComparison.Ordinal), StringComparison.Ordinal);

        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(body));

        await ShouldRepeatTruncatedAsync(response, HttpStatusCode.BadRequest, LongBodyValue);
    }

    [Theory]
    [InlineData("\"LONG\"")]
    [InlineData("{\"value\":\"LONG\"}")]
    [InlineData("[\"LONG\"]")]
    public async Task LongPredictValueIsTruncated(string value)
    {
        // GetRawText, which the error repeats, returns the value as the body spells it, quotes and brackets included.
        string rawValue = value.Replace(Placeholder, LongBodyValue, StringComparison.Ordinal);
        string body = "{\"instances\":[[" + rawValue + string.Concat(Enumerable.Repeat(",0", 15)) + "]]}";

        using HttpResponseMessage response = await server.Client.PostAsync(PredictPath, InferenceRequests.Json(body));

        await ShouldRepeatTruncatedAsync(response, HttpStatusCode.BadRequest, rawValue);
    }

    private static async Task ShouldRepeatTruncatedAsync(HttpResponseMessage response, HttpStatusCode expected, string value)
    {
        response.StatusCode.ShouldBe(expected);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        string message = error.RootElement.GetProperty("error").GetString()!;
        message.ShouldContain(ClientText.Truncate(value));
        message.ShouldContain($"... ({value.Length} characters)");
        message.Length.ShouldBeLessThan(MaxMessageLength);
    }
}
