using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

/// <summary>Input name and Content-Type checks on the inference route.</summary>
public sealed class RequestValidationTests : IAsyncLifetime
{
    private const string InferPath = "v2/models/test-model/infer";
    private RunningServer server = null!;

    public async Task InitializeAsync() => server = await RunningServer.StartAsync();

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Theory]
    [InlineData("\"features\"", "'features'")]
    [InlineData("\"INPUT\"", "'INPUT'")]
    [InlineData("null", "missing")]
    public async Task UnknownInputNameGets400(string name, string nameInMessage)
    {
        string body = InferenceRequests.Body(1, 16).Replace("\"name\":\"input\"", "\"name\":" + name, StringComparison.Ordinal);

        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(body));

        response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        error.RootElement.GetProperty("field").GetString().ShouldBe("inputs[0].name");
        error.RootElement.GetProperty("expected").GetString().ShouldBe("input");
        string message = error.RootElement.GetProperty("error").GetString()!;
        message.ShouldContain(nameInMessage);
        message.ShouldContain("'input'");
    }

    [Fact]
    public async Task MetadataInputNameIsAccepted()
    {
        using JsonDocument metadata = JsonDocument.Parse(await server.Client.GetStringAsync("v2/models/test-model"));
        string name = metadata.RootElement.GetProperty("inputs")[0].GetProperty("name").GetString()!;
        string body = InferenceRequests.Body(1, 16).Replace("\"name\":\"input\"", $"\"name\":\"{name}\"", StringComparison.Ordinal);

        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(body));

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("multipart/form-data; boundary=x")]
    [InlineData("application/xml")]
    public async Task WrongContentTypeGets415(string contentType)
    {
        using HttpResponseMessage response = await PostAsync(contentType);

        response.StatusCode.ShouldBe(HttpStatusCode.UnsupportedMediaType);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        error.RootElement.GetProperty("field").GetString().ShouldBe("Content-Type");
        string message = error.RootElement.GetProperty("error").GetString()!;
        message.ShouldContain(contentType);
        message.ShouldContain("application/json");
        message.ShouldContain("application/octet-stream");
    }

    [Theory]
    [InlineData("application/json; charset=utf-16", "utf-16")]
    [InlineData("application/json; charset=ISO-8859-1", "ISO-8859-1")]
    [InlineData("application/json; charset=\"latin1\"", "latin1")]
    public async Task NonUtf8CharsetGets415(string contentType, string charset)
    {
        using HttpResponseMessage response = await PostAsync(contentType);

        response.StatusCode.ShouldBe(HttpStatusCode.UnsupportedMediaType);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        error.RootElement.GetProperty("field").GetString().ShouldBe("Content-Type");
        error.RootElement.GetProperty("expected").GetString().ShouldBe("charset=utf-8, or no charset");
        error.RootElement.GetProperty("error").GetString()!.ShouldContain($"'{charset}'");
    }

    [Theory]
    [InlineData("application/json")]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("application/json; charset=UTF-8")]
    [InlineData("application/json; charset=\"utf-8\"")]
    [InlineData("application/json; charset=utf8")]
    [InlineData("application/json; charset=us-ascii")]
    [InlineData("Application/JSON")]
    [InlineData("application/octet-stream")]
    [InlineData(null)]
    public async Task AcceptedContentTypesAreServed(string? contentType)
    {
        using HttpResponseMessage response = await PostAsync(contentType);

        response.StatusCode.ShouldBe(HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
    }

    private async Task<HttpResponseMessage> PostAsync(string? contentType)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(InferenceRequests.Body(1, 16)));
        if (contentType is not null)
        {
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, InferPath) { Content = content };
        return await server.Client.SendAsync(request);
    }
}
