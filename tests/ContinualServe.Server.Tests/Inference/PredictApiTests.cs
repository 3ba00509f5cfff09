using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

public sealed class PredictApiTests : IAsyncLifetime
{
    private const string PredictPath = "v1/models/test-model:predict";
    private const int Features = 16;
    private RunningServer server = null!;

    public async Task InitializeAsync() => server = await RunningServer.StartAsync(versions: 2, maxRequestBodyBytes: 64 * 1024);

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Fact]
    public async Task PredictMatchesV2Infer()
    {
        using HttpResponseMessage predicted = await server.Client.PostAsync(PredictPath, Json(Instances(rows: 3)));
        using HttpResponseMessage inferred = await server.Client.PostAsync("v2/models/test-model/infer", InferenceRequests.Json(InferenceRequests.Body(3, Features)));

        predicted.StatusCode.ShouldBe(HttpStatusCode.OK);
        using JsonDocument v1 = JsonDocument.Parse(await predicted.Content.ReadAsStringAsync());
        using JsonDocument v2 = JsonDocument.Parse(await inferred.Content.ReadAsStringAsync());
        v1.RootElement.GetProperty("model_version").GetString().ShouldBe("2");
        v1.RootElement.GetProperty("model_name").GetString().ShouldBe("test-model");
        JsonElement[] predictions = v1.RootElement.GetProperty("predictions").EnumerateArray().ToArray();
        predictions.Length.ShouldBe(3);
        float[] expected = v2.RootElement.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(value => value.GetSingle()).ToArray();
        long[] expectedLabels = v2.RootElement.GetProperty("outputs")[1].GetProperty("data").EnumerateArray().Select(value => value.GetInt64()).ToArray();
        for (int row = 0; row < 3; row++)
        {
            float[] probabilities = predictions[row].GetProperty("probabilities").EnumerateArray().Select(value => value.GetSingle()).ToArray();
            probabilities.ShouldBe(expected[(row * 3)..((row + 1) * 3)]);
            predictions[row].GetProperty("label").GetInt64().ShouldBe(expectedLabels[row]);
        }
    }

    [Theory]
    [InlineData("{not json", "body")]
    [InlineData("[]", "instances")]
    [InlineData("{\"inputs\":[]}", "instances")]
    [InlineData("{\"instances\":[]}", "instances")]
    [InlineData("{\"instances\":{}}", "instances")]
    [InlineData("{\"instances\":[[1,2,3]]}", "instances[0]")]
    [InlineData("{\"instances\":[5]}", "instances[0]")]
    [InlineData("{\"instances\":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],[0,0,0,\"x\",0,0,0,0,0,0,0,0,0,0,0,0]]}", "instances[1][3]")]
    [InlineData("{\"instances\":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1e39]]}", "instances[0][15]")]
    [InlineData("{\"instances\":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]} trailing", "body")]
    [InlineData("{\"instances\":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]}{}", "body")]
    public async Task InvalidBodyGets400NamingField(string body, string field)
    {
        using HttpResponseMessage response = await server.Client.PostAsync(PredictPath, Json(body));

        response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        response.Content.Headers.ContentType?.MediaType.ShouldBe("application/json");
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        error.RootElement.GetProperty("field").GetString().ShouldBe(field);
    }

    [Theory]
    [InlineData("", "body", "The request body is empty. Send a JSON object with an 'instances' array.")]
    [InlineData("{\"instances\":[[0]],\"instances\":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]}", "instances", "The request body contains the property instances twice.")]
    [InlineData("{\"instances\":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]],\"meta\":{\"a\":1,\"a\":2}}", "meta.a", "The request body contains the property meta.a twice.")]
    public async Task EmptyOrDuplicateBodyGets400Message(string body, string field, string message)
    {
        using HttpResponseMessage response = await server.Client.PostAsync(PredictPath, Json(body));

        response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        error.RootElement.GetProperty("field").GetString().ShouldBe(field);
        error.RootElement.GetProperty("error").GetString().ShouldBe(message);
    }

    [Fact]
    public async Task InvalidUtf8StringGets400()
    {
        byte[] body = [.. "{\"instances\":[[\""u8, 0xFF, 0xFE, .. "\",0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]}"u8];
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");

        using HttpResponseMessage response = await server.Client.PostAsync(PredictPath, content);

        response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        error.RootElement.GetProperty("field").GetString().ShouldBe("body");
    }

    [Fact]
    public async Task GetOnPredictGets405()
    {
        using HttpResponseMessage response = await server.Client.GetAsync(PredictPath);

        response.StatusCode.ShouldBe(HttpStatusCode.MethodNotAllowed);
        response.Content.Headers.Allow.ShouldBe(["POST"]);
    }

    [Fact]
    public async Task TooManyInstancesGets400()
    {
        using HttpResponseMessage response = await server.Client.PostAsync(PredictPath, Json(Instances(rows: 65)));

        response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync()).ShouldContain("1 to 64 instances");
    }

    [Fact]
    public async Task BinaryContentTypeGets415()
    {
        using var content = new ByteArrayContent(new byte[64]);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");

        using HttpResponseMessage response = await server.Client.PostAsync(PredictPath, content);

        response.StatusCode.ShouldBe(HttpStatusCode.UnsupportedMediaType);
    }

    [Fact]
    public async Task UnknownModelGets404()
    {
        using HttpResponseMessage predict = await server.Client.PostAsync("v1/models/other:predict", Json(Instances(rows: 1)));
        using HttpResponseMessage status = await server.Client.GetAsync("v1/models/other");

        predict.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        status.StatusCode.ShouldBe(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task ModelStatusReportsReady()
    {
        using HttpResponseMessage response = await server.Client.GetAsync("v1/models/test-model");

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        using JsonDocument status = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        status.RootElement.GetProperty("ready").GetBoolean().ShouldBeTrue();
    }

    // The same rows as InferenceRequests.Body: value (index mod 7) at each position of the row-major data.
    private static string Instances(int rows)
    {
        IEnumerable<string> instances = Enumerable.Range(0, rows).Select(row =>
            "[" + string.Join(",", Enumerable.Range(row * Features, Features).Select(index => (index % 7).ToString(CultureInfo.InvariantCulture))) + "]");
        return "{\"instances\":[" + string.Join(",", instances) + "]}";
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
}
