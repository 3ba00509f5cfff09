using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

/// <summary>
/// The binary tensor data extension on the response side: <c>binary_data</c> on a requested output, the
/// request-level <c>binary_data_output</c>, and which of the two wins.
/// </summary>
public sealed class BinaryOutputTests : IAsyncLifetime
{
    private const string InferPath = "v2/models/test-model/infer";
    private const int Batch = 2;
    private const int Classes = 3;
    private const string HeaderLengthName = "Inference-Header-Content-Length";
    private RunningServer server = null!;

    public async Task InitializeAsync() => server = await RunningServer.StartAsync();

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Fact]
    public async Task PerOutputBinaryReturnsBytes()
    {
        float[] expected = await JsonProbabilities();

        BinaryResponse response = await PostAsync(Request(outputs: "[{\"name\":\"probabilities\",\"parameters\":{\"binary_data\":true}}]"));

        response.ContentType.ShouldBe("application/octet-stream");
        JsonElement outputs = response.Header.GetProperty("outputs");
        outputs.GetArrayLength().ShouldBe(1);
        outputs[0].GetProperty("name").GetString().ShouldBe("probabilities");
        outputs[0].TryGetProperty("data", out _).ShouldBeFalse();
        outputs[0].GetProperty("parameters").GetProperty("binary_data_size").GetInt32().ShouldBe(Batch * Classes * sizeof(float));
        response.Binary.Length.ShouldBe(Batch * Classes * sizeof(float));
        ReadSingles(response.Binary).ShouldBe(expected);
    }

    [Fact]
    public async Task MixedOutputsSplitJsonAndBytes()
    {
        float[] expected = await JsonProbabilities();

        BinaryResponse response = await PostAsync(Request(outputs: "[{\"name\":\"probabilities\"},{\"name\":\"label\",\"parameters\":{\"binary_data\":true}}]"));

        JsonElement outputs = response.Header.GetProperty("outputs");
        outputs.GetArrayLength().ShouldBe(2);
        outputs[0].GetProperty("name").GetString().ShouldBe("probabilities");
        outputs[0].GetProperty("data").EnumerateArray().Select(value => value.GetSingle()).ShouldBe(expected);
        outputs[0].TryGetProperty("parameters", out _).ShouldBeFalse();
        outputs[1].GetProperty("name").GetString().ShouldBe("label");
        outputs[1].GetProperty("parameters").GetProperty("binary_data_size").GetInt32().ShouldBe(Batch * sizeof(long));
        response.Binary.Length.ShouldBe(Batch * sizeof(long));
        ReadLabels(response.Binary).ShouldBe(ArgMaxRows(expected));
    }

    [Fact]
    public async Task OutputFalseOverridesRequestTrue()
    {
        float[] expected = await JsonProbabilities();
        string outputs = "[{\"name\":\"probabilities\",\"parameters\":{\"binary_data\":false}},{\"name\":\"label\"}]";

        BinaryResponse response = await PostAsync(Request(outputs, binaryDataOutput: true));

        JsonElement header = response.Header.GetProperty("outputs");
        header[0].GetProperty("data").EnumerateArray().Select(value => value.GetSingle()).ShouldBe(expected);
        header[1].GetProperty("parameters").GetProperty("binary_data_size").GetInt32().ShouldBe(Batch * sizeof(long));
        ReadLabels(response.Binary).ShouldBe(ArgMaxRows(expected));
    }

    [Fact]
    public async Task AllOutputsFalseReturnJson()
    {
        string outputs = "[{\"name\":\"probabilities\",\"parameters\":{\"binary_data\":false}},{\"name\":\"label\",\"parameters\":{\"binary_data\":false}}]";

        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(Request(outputs, binaryDataOutput: true)));

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        response.Content.Headers.ContentType.ShouldNotBeNull().MediaType.ShouldBe("application/json");
        response.Headers.Contains(HeaderLengthName).ShouldBeFalse();
        using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        document.RootElement.GetProperty("outputs")[1].GetProperty("data").GetArrayLength().ShouldBe(Batch);
    }

    [Fact]
    public async Task RequestedSubsetIsReturned()
    {
        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(Request(outputs: "[{\"name\":\"label\"}]")));

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        JsonElement outputs = document.RootElement.GetProperty("outputs");
        outputs.GetArrayLength().ShouldBe(1);
        outputs[0].GetProperty("name").GetString().ShouldBe("label");
        outputs[0].GetProperty("data").GetArrayLength().ShouldBe(Batch);
    }

    [Theory]
    [InlineData("[{\"name\":\"logits\"}]", "outputs[0].name", "logits")]
    [InlineData("[{\"name\":\"label\"},{\"name\":\"Probabilities\",\"parameters\":{\"binary_data\":true}}]", "outputs[1].name", "Probabilities")]
    public async Task UnknownOutputGets400(string outputs, string field, string name)
    {
        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(Request(outputs)));

        response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        JsonElement root = document.RootElement;
        root.GetProperty("field").GetString().ShouldBe(field);
        string error = root.GetProperty("error").GetString()!;
        error.ShouldContain($"'{name}'");
        error.ShouldContain("'probabilities'");
        error.ShouldContain("'label'");
    }

    [Theory]
    [InlineData("[{\"name\":\"label\"},{\"name\":\"label\"}]", "outputs[1].name")]
    [InlineData("[{\"parameters\":{\"binary_data\":true}}]", "outputs[0].name")]
    [InlineData("[{\"name\":\"label\",\"parameters\":{\"binary_data\":\"yes\"}}]", "outputs[0].parameters.binary_data")]
    [InlineData("{\"name\":\"label\"}", "outputs")]
    public async Task InvalidOutputsGet400(string outputs, string field)
    {
        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(Request(outputs)));

        response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        document.RootElement.GetProperty("field").GetString().ShouldBe(field);
    }

    private static string Request(string? outputs = null, bool binaryDataOutput = false)
    {
        string body = InferenceRequests.Body(Batch, 16);
        string extra = (outputs is null ? "" : $",\"outputs\":{outputs}")
            + (binaryDataOutput ? ",\"parameters\":{\"binary_data_output\":true}" : "");
        return body[..^1] + extra + "}";
    }

    private async Task<float[]> JsonProbabilities()
    {
        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(Request()));
        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(value => value.GetSingle()).ToArray();
    }

    private async Task<BinaryResponse> PostAsync(string body)
    {
        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(body));
        byte[] bytes = await response.Content.ReadAsByteArrayAsync();
        response.StatusCode.ShouldBe(HttpStatusCode.OK, System.Text.Encoding.UTF8.GetString(bytes));
        response.Headers.TryGetValues(HeaderLengthName, out IEnumerable<string>? values).ShouldBeTrue();
        int headerLength = int.Parse(values!.Single(), CultureInfo.InvariantCulture);
        using JsonDocument header = JsonDocument.Parse(bytes.AsMemory(0, headerLength));
        return new BinaryResponse(response.Content.Headers.ContentType?.MediaType, header.RootElement.Clone(), bytes[headerLength..]);
    }

    private static float[] ReadSingles(byte[] bytes) =>
        Enumerable.Range(0, bytes.Length / sizeof(float)).Select(index => BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(index * sizeof(float)))).ToArray();

    private static long[] ReadLabels(byte[] bytes) =>
        Enumerable.Range(0, bytes.Length / sizeof(long)).Select(index => BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(index * sizeof(long)))).ToArray();

    private static long[] ArgMaxRows(float[] probabilities) =>
        probabilities.Chunk(Classes).Select(row => (long)Array.IndexOf(row, row.Max())).ToArray();

    private sealed record BinaryResponse(string? ContentType, JsonElement Header, byte[] Binary);
}
