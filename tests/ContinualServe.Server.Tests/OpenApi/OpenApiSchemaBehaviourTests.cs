using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using ContinualServe.Server.Tests.Management;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.OpenApi;

/// <summary>
/// The OpenAPI schemas agree with what the hand-written readers and writers do: a property the request schema
/// requires is rejected when missing, an optional one is not, and real responses have the declared properties.
/// </summary>
public sealed class OpenApiSchemaBehaviourTests : IAsyncLifetime
{
    private const string InferPath = "v2/models/test-model/infer";
    private const string PredictPath = "v1/models/test-model:predict";
    private const int Features = 16;

    private RunningServer server = null!;
    private OpenApiSchemas document = null!;

    public async Task InitializeAsync()
    {
        server = await RunningServer.StartAsync();
        document = await OpenApiSchemas.FetchAsync(server.Client);
    }

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Fact]
    public async Task InferRequiredPropertiesMatchReader()
    {
        JsonObject schema = document.RequestSchema(document.Operation("/v2/models/{name}/infer", "post"));
        JsonObject valid = ValidInferRequest();
        var cases = new List<PropertyCase>();
        var uncovered = new List<string>();
        CollectCases(document, schema, valid, [], cases, uncovered);

        (await PostAsync(InferPath, valid)).ShouldBe(HttpStatusCode.OK);
        cases.Where(item => item.Required).Select(item => item.Path).ShouldBe(
            ["inputs", "inputs[0].name", "inputs[0].shape", "inputs[0].datatype", "inputs[0].data", "outputs[0].name"],
            ignoreOrder: true);
        uncovered.ShouldBe(["inputs[0].parameters.binary_data_size"]);
        Dictionary<string, HttpStatusCode> actual = await StatusWithoutEachAsync(InferPath, valid, cases);
        actual.ShouldBe(ExpectedStatuses(cases));
    }

    [Fact]
    public async Task PredictRequiredPropertiesMatchReader()
    {
        JsonObject schema = document.RequestSchema(document.Operation("/v1/models/{name}:predict", "post"));
        JsonObject valid = new() { ["instances"] = new JsonArray(Row(), Row()) };
        var cases = new List<PropertyCase>();
        var uncovered = new List<string>();
        CollectCases(document, schema, valid, [], cases, uncovered);

        (await PostAsync(PredictPath, valid)).ShouldBe(HttpStatusCode.OK);
        cases.Select(item => item.Path).ShouldBe(["instances"]);
        uncovered.ShouldBeEmpty();
        Dictionary<string, HttpStatusCode> actual = await StatusWithoutEachAsync(PredictPath, valid, cases);
        actual.ShouldBe(ExpectedStatuses(cases));
    }

    // The upload is sent as text/plain, because the handler reads any Content-Type as JSON.
    [Fact]
    public async Task GoldenSetRequiredPropertiesMatchHandler()
    {
        await using ManagementServer management = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        OpenApiSchemas managementDocument = await OpenApiSchemas.FetchAsync(management.Inference);
        JsonObject schema = managementDocument.RequestSchema(managementDocument.Operation("/manage/v1/golden-set", "put"));
        JsonObject valid = new() { ["examples"] = new JsonArray(new JsonObject { ["label"] = 1, ["features"] = Row() }) };
        var cases = new List<PropertyCase>();
        var uncovered = new List<string>();
        CollectCases(managementDocument, schema, valid, [], cases, uncovered);

        async Task<HttpStatusCode> UploadAsync(JsonNode body)
        {
            using var request = new HttpRequestMessage(HttpMethod.Put, "manage/v1/golden-set")
            {
                Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "text/plain"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ManagementServer.Token);
            using HttpResponseMessage response = await management.Management.SendAsync(request);
            return response.StatusCode;
        }

        (await UploadAsync(valid)).ShouldBe(HttpStatusCode.OK);
        cases.Where(item => item.Required).Select(item => item.Path).ShouldBe(["examples", "examples[0].label", "examples[0].features"], ignoreOrder: true);
        uncovered.ShouldBeEmpty();
        Dictionary<string, HttpStatusCode> actual = await StatusWithoutEachAsync(UploadAsync, valid, cases);
        actual.ShouldBe(ExpectedStatuses(cases));
    }

    [Fact]
    public async Task InferResponseMatchesSchema()
    {
        JsonObject operation = document.Operation("/v2/models/{name}/infer", "post");
        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, Json(ValidInferRequest()));
        JsonNode body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        Mismatches(document.ResponseSchema(operation, 200), body, "").ShouldBeEmpty();
    }

    [Fact]
    public async Task PredictResponseMatchesSchema()
    {
        JsonObject operation = document.Operation("/v1/models/{name}:predict", "post");
        using HttpResponseMessage response = await server.Client.PostAsync(PredictPath, Json(new JsonObject { ["instances"] = new JsonArray(Row()) }));
        JsonNode body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        Mismatches(document.ResponseSchema(operation, 200), body, "").ShouldBeEmpty();
    }

    [Theory]
    [InlineData(InferPath, "{\"inputs\": []}", HttpStatusCode.BadRequest)]
    [InlineData("v2/models/other/infer", "{}", HttpStatusCode.NotFound)]
    [InlineData(PredictPath, "{\"instances\": [[1, 2]]}", HttpStatusCode.BadRequest)]
    public async Task ErrorBodyMatchesSchema(string path, string body, HttpStatusCode expected)
    {
        string operationPath = path.StartsWith("v1/", StringComparison.Ordinal) ? "/v1/models/{name}:predict" : "/v2/models/{name}/infer";
        JsonObject schema = document.ResponseSchema(document.Operation(operationPath, "post"), (int)expected);
        using HttpResponseMessage response = await server.Client.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        JsonNode error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

        response.StatusCode.ShouldBe(expected);
        Mismatches(schema, error, "").ShouldBeEmpty();
        error.AsObject().Select(property => property.Key).ShouldBe(OpenApiSchemas.PropertyNames(schema), ignoreOrder: true);
    }

    // Every optional property the schema describes is present here, so that removing it is tested too.
    private static JsonObject ValidInferRequest() => new()
    {
        ["id"] = "r1",
        ["inputs"] = new JsonArray(new JsonObject
        {
            ["name"] = "input",
            ["shape"] = new JsonArray(1, Features),
            ["datatype"] = "FP32",
            ["data"] = Row(),
            ["parameters"] = new JsonObject(),
        }),
        ["outputs"] = new JsonArray(new JsonObject
        {
            ["name"] = "label",
            ["parameters"] = new JsonObject { ["binary_data"] = false },
        }),
        ["parameters"] = new JsonObject { ["binary_data_output"] = false },
    };

    private static JsonArray Row() => new([.. Enumerable.Range(0, Features).Select(index => JsonValue.Create(index % 5))]);

    private static StringContent Json(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    private async Task<HttpStatusCode> PostAsync(string path, JsonNode body)
    {
        using HttpResponseMessage response = await server.Client.PostAsync(path, Json(body));
        return response.StatusCode;
    }

    // Sends the valid request once per case, without that case's property.
    private Task<Dictionary<string, HttpStatusCode>> StatusWithoutEachAsync(string path, JsonObject valid, List<PropertyCase> cases) =>
        StatusWithoutEachAsync(body => PostAsync(path, body), valid, cases);

    private static async Task<Dictionary<string, HttpStatusCode>> StatusWithoutEachAsync(
        Func<JsonNode, Task<HttpStatusCode>> send, JsonObject valid, List<PropertyCase> cases)
    {
        var statuses = new Dictionary<string, HttpStatusCode>();
        foreach (PropertyCase item in cases)
        {
            JsonNode request = valid.DeepClone();
            JsonNode parent = request;
            foreach (object segment in item.Segments[..^1])
            {
                parent = segment is int index ? parent[index]! : parent[(string)segment]!;
            }

            parent.AsObject().Remove((string)item.Segments[^1]).ShouldBeTrue(item.Path);
            statuses[item.Path] = await send(request);
        }

        return statuses;
    }

    private static Dictionary<string, HttpStatusCode> ExpectedStatuses(List<PropertyCase> cases) =>
        cases.ToDictionary(item => item.Path, item => item.Required ? HttpStatusCode.BadRequest : HttpStatusCode.OK);

    // Lists each property of the schema that the instance contains, with whether the schema requires it, and
    // descends into objects and the first item of arrays of objects. Properties the instance lacks go to uncovered.
    private static void CollectCases(
        OpenApiSchemas document, JsonObject schema, JsonNode instance, object[] prefix, List<PropertyCase> cases, List<string> uncovered)
    {
        IReadOnlyList<string> required = OpenApiSchemas.RequiredNames(schema);
        foreach (string name in OpenApiSchemas.PropertyNames(schema))
        {
            object[] segments = [.. prefix, name];
            JsonNode? value = instance.AsObject()[name];
            if (!instance.AsObject().ContainsKey(name))
            {
                uncovered.Add(PropertyCase.Format(segments));
                continue;
            }

            cases.Add(new PropertyCase(segments, required.Contains(name)));
            JsonObject propertySchema = document.Resolve(schema["properties"]![name]);
            if (value is JsonObject)
            {
                CollectCases(document, propertySchema, value, segments, cases, uncovered);
            }
            else if (value is JsonArray { Count: > 0 } array && array[0] is JsonObject first && propertySchema["items"] is JsonNode items)
            {
                CollectCases(document, document.Resolve(items), first, [.. segments, 0], cases, uncovered);
            }
        }
    }

    // Lists properties of the instance that the schema does not declare, and required ones the instance lacks.
    private List<string> Mismatches(JsonObject schema, JsonNode instance, string path)
    {
        var problems = new List<string>();
        if (instance is not JsonObject body)
        {
            return problems;
        }

        IReadOnlyList<string> declared = OpenApiSchemas.PropertyNames(schema);
        problems.AddRange(OpenApiSchemas.RequiredNames(schema).Where(name => !body.ContainsKey(name)).Select(name => $"{path}{name} is required but missing"));
        foreach ((string name, JsonNode? value) in body)
        {
            if (!declared.Contains(name))
            {
                problems.Add($"{path}{name} is not in the schema");
                continue;
            }

            JsonObject propertySchema = document.Resolve(schema["properties"]![name]);
            if (value is JsonArray array && propertySchema["items"] is JsonNode items)
            {
                JsonObject itemSchema = document.Resolve(items);
                for (int index = 0; index < array.Count; index++)
                {
                    problems.AddRange(Mismatches(itemSchema, array[index]!, $"{path}{name}[{index}]."));
                }
            }
            else if (value is JsonObject)
            {
                problems.AddRange(Mismatches(propertySchema, value, $"{path}{name}."));
            }
        }

        return problems;
    }

    private sealed record PropertyCase(object[] Segments, bool Required)
    {
        public string Path => Format(Segments);

        public static string Format(object[] segments) =>
            string.Concat(segments.Select((segment, index) => segment is int position ? $"[{position}]" : (index == 0 ? "" : ".") + segment));
    }
}
