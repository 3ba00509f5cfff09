using System.Net;
using System.Text.Json;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

/// <summary>Input name checks on the inference route.</summary>
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
}
