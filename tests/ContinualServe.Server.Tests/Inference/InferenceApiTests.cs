using System.Net;
using System.Text.Json;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

public sealed class InferenceApiTests : IAsyncLifetime
{
    private const string InferPath = "v2/models/test-model/infer";
    private RunningServer server = null!;

    public async Task InitializeAsync() => server = await RunningServer.StartAsync(versions: 2, maxRequestBodyBytes: 64 * 1024);

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Fact]
    public async Task InferReturnsProbabilitiesAndVersion()
    {
        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(InferenceRequests.Body(3, 16)));

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        JsonElement root = document.RootElement;
        root.GetProperty("model_version").GetString().ShouldBe("2");
        root.GetProperty("id").GetString().ShouldBe("r1");
        JsonElement probabilities = root.GetProperty("outputs")[0];
        probabilities.GetProperty("shape").EnumerateArray().Select(size => size.GetInt32()).ShouldBe([3, 3]);
        float[] values = probabilities.GetProperty("data").EnumerateArray().Select(value => value.GetSingle()).ToArray();
        values.Length.ShouldBe(9);
        values.Take(3).Sum().ShouldBe(1f, 1e-4f);
        root.GetProperty("outputs")[1].GetProperty("data").GetArrayLength().ShouldBe(3);
    }

    [Fact]
    public async Task VersionedRouteMatchesLiveVersion()
    {
        using HttpResponseMessage live = await server.Client.PostAsync("v2/models/test-model/versions/2/infer", InferenceRequests.Json(InferenceRequests.Body(1, 16)));
        using HttpResponseMessage old = await server.Client.PostAsync("v2/models/test-model/versions/1/infer", InferenceRequests.Json(InferenceRequests.Body(1, 16)));

        live.StatusCode.ShouldBe(HttpStatusCode.OK);
        old.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        (await ErrorField(old)).ShouldBe("version");
    }

    [Theory]
    [InlineData("2", HttpStatusCode.OK)]
    [InlineData("1", HttpStatusCode.NotFound)]
    [InlineData("abc", HttpStatusCode.BadRequest)]
    public async Task VersionReadyMatchesLiveVersion(string version, HttpStatusCode expected)
    {
        using HttpResponseMessage response = await server.Client.GetAsync($"v2/models/test-model/versions/{version}/ready");

        response.StatusCode.ShouldBe(expected);
        using JsonDocument body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        if (expected == HttpStatusCode.OK)
        {
            body.RootElement.GetProperty("ready").GetBoolean().ShouldBeTrue();
        }
        else
        {
            body.RootElement.GetProperty("field").GetString().ShouldBe("version");
        }
    }

    [Theory]
    [InlineData("GET", "abc")]
    [InlineData("GET", "0")]
    [InlineData("GET", "-1")]
    [InlineData("GET", "1.5")]
    [InlineData("GET", "99999999999999999999")]
    [InlineData("POST", "abc")]
    [InlineData("POST", "0")]
    [InlineData("POST", "+2")]
    public async Task InvalidVersionSegmentGets400(string method, string version)
    {
        string path = method == "GET" ? $"v2/models/test-model/versions/{version}" : $"v2/models/test-model/versions/{version}/infer";
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method == "POST")
        {
            request.Content = InferenceRequests.Json(InferenceRequests.Body(1, 16));
        }

        using HttpResponseMessage response = await server.Client.SendAsync(request);

        response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        response.Content.Headers.ContentType?.MediaType.ShouldBe("application/json");
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        error.RootElement.GetProperty("error").GetString().ShouldBe($"Version '{version}' is invalid. A version is a positive integer, such as 1.");
        error.RootElement.GetProperty("field").GetString().ShouldBe("version");
        error.RootElement.GetProperty("expected").GetString().ShouldBe("a positive integer");
    }

    [Theory]
    [InlineData("{not json", "body")]
    [InlineData("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,16],\"datatype\":\"FP64\",\"data\":[]}]}", "inputs[0].datatype")]
    [InlineData("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,15],\"datatype\":\"FP32\",\"data\":[]}]}", "inputs[0].shape")]
    [InlineData("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,4,4],\"datatype\":\"FP32\",\"data\":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}]}", "inputs[0].shape")]
    [InlineData("{\"inputs\":[{\"name\":\"input\",\"shape\":[16],\"datatype\":\"FP32\",\"data\":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}]}", "inputs[0].shape")]
    [InlineData("{\"inputs\":[{\"name\":\"input\",\"shape\":[0,16],\"datatype\":\"FP32\",\"data\":[]}]}", "inputs[0].shape[0]")]
    [InlineData("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,16],\"datatype\":\"FP32\",\"data\":[1,2]}]}", "inputs[0].data")]
    public async Task BadRequestsGet400WithField(string body, string field)
    {
        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(body));

        response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await ErrorField(response)).ShouldBe(field);
    }

    [Fact]
    public async Task UnknownModelGets404()
    {
        using HttpResponseMessage response = await server.Client.PostAsync("v2/models/other/infer", InferenceRequests.Json(InferenceRequests.Body(1, 16)));

        response.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        (await ErrorField(response)).ShouldBe("name");
    }

    [Fact]
    public async Task OversizedBodyGets413()
    {
        string body = InferenceRequests.Body(64, 16, data: "[" + string.Join(",", Enumerable.Repeat("1.000000", 10_000)) + "]");

        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(body));

        response.StatusCode.ShouldBe(HttpStatusCode.RequestEntityTooLarge);
        (await ErrorText(response)).ShouldContain("65536 (Server:MaxRequestBodyBytes)");
    }

    // Without Content-Length the limit is found while reading, by the server's own count or by Kestrel's, and the
    // client needs the setting's name as much.
    [Fact]
    public async Task ChunkedOversizedBodyGets413()
    {
        string body = InferenceRequests.Body(64, 16, data: "[" + string.Join(",", Enumerable.Repeat("1.000000", 10_000)) + "]");
        using var content = new StreamContent(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(body)));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, InferPath) { Content = content };
        request.Headers.TransferEncodingChunked = true;

        using HttpResponseMessage response = await server.Client.SendAsync(request);

        response.StatusCode.ShouldBe(HttpStatusCode.RequestEntityTooLarge);
        (await ErrorText(response)).ShouldContain("65536 bytes (Server:MaxRequestBodyBytes)");
    }

    [Fact]
    public async Task TooManyRowsNameTheBatchSetting()
    {
        // The data is read first, so a full body fails on its values and an empty one on its shape.
        using HttpResponseMessage v2 = await server.Client.PostAsync(InferPath, InferenceRequests.Json(InferenceRequests.Body(65, 16)));
        using HttpResponseMessage v2Shape = await server.Client.PostAsync(InferPath, InferenceRequests.Json(InferenceRequests.Body(65, 16, data: "[]")));
        string instances = "[" + string.Join(",", Enumerable.Repeat("[" + string.Join(",", Enumerable.Repeat("0", 16)) + "]", 65)) + "]";
        using HttpResponseMessage v1 = await server.Client.PostAsync("v1/models/test-model:predict", InferenceRequests.Json($"{{\"instances\":{instances}}}"));

        v2.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await ErrorText(v2)).ShouldBe("Input data has more than 1024 values: the server accepts at most 64 rows (Server:MaxBatchSize) of 16 features.");
        v2Shape.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await ErrorText(v2Shape)).ShouldBe("Batch size 65 is out of range: the server accepts 1 to 64 rows (Server:MaxBatchSize).");
        v1.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await ErrorText(v1)).ShouldBe("The request has 65 instances; the server accepts 1 to 64 (Server:MaxBatchSize).");
    }

    [Fact]
    public async Task HealthAndMetadataRoutesAnswer()
    {
        (await server.Client.GetAsync("v2/health/live")).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await server.Client.GetAsync("v2/health/ready")).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await server.Client.GetAsync("v2/models/test-model/ready")).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await server.Client.GetAsync("v2/models/other/ready")).StatusCode.ShouldBe(HttpStatusCode.NotFound);

        (await server.Client.GetAsync("v2/models/test-model/versions/2")).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await server.Client.GetAsync("v2/models/test-model/versions/1")).StatusCode.ShouldBe(HttpStatusCode.NotFound);
        using JsonDocument metadata = JsonDocument.Parse(await server.Client.GetStringAsync("v2/models/test-model"));
        metadata.RootElement.GetProperty("versions")[0].GetString().ShouldBe("2");
        metadata.RootElement.GetProperty("inputs")[0].GetProperty("shape")[1].GetInt32().ShouldBe(16);
        using JsonDocument serverMetadata = JsonDocument.Parse(await server.Client.GetStringAsync("v2"));
        serverMetadata.RootElement.GetProperty("extensions").EnumerateArray().Select(item => item.GetString()).ShouldBe(["binary_tensor_data"]);
    }

    [Fact]
    public async Task MetricsExportInferenceCounters()
    {
        using HttpResponseMessage _ = await server.Client.PostAsync(InferPath, InferenceRequests.Json(InferenceRequests.Body(1, 16)));

        string metrics = await server.Client.GetStringAsync("metrics");

        metrics.ShouldContain("continualserve_inference_requests_total{model=\"test-model\",outcome=\"ok\"}");
        metrics.ShouldContain("continualserve_inference_duration_seconds_bucket");
        // Metrics are process-wide, and management tests swap versions of the same model name in parallel, so
        // only the series is checked here, not its value.
        metrics.ShouldContain("continualserve_model_version{model=\"test-model\"} ");
        metrics.ShouldContain("continualserve_model_swaps_total");
    }

    [Fact]
    public async Task OpenApiDocumentIsServed()
    {
        string document = await server.Client.GetStringAsync("openapi/v1.json");

        document.ShouldContain("/v2/models/{name}/infer");
    }

    private static async Task<string> ErrorText(HttpResponseMessage response)
    {
        using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.GetProperty("error").GetString().ShouldNotBeNull();
    }

    private static async Task<string?> ErrorField(HttpResponseMessage response)
    {
        using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.GetProperty("field").GetString();
    }
}
