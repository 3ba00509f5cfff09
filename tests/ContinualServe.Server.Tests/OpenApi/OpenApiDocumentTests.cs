using System.Text.Json.Nodes;
using ContinualServe.Model.Store;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Hosting;
using ContinualServe.Server.Tests.Management;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.OpenApi;

/// <summary>The served OpenAPI document declares the bodies and error responses of the hand-written routes.</summary>
public sealed class OpenApiDocumentTests : IAsyncLifetime
{
    private static readonly int[] InferenceErrorStatusCodes = [400, 404, 413, 415, 429, 500, 503];

    private RunningServer server = null!;
    private OpenApiSchemas document = null!;

    public async Task InitializeAsync()
    {
        server = await RunningServer.StartAsync();
        document = await OpenApiSchemas.FetchAsync(server.Client);
    }

    public async Task DisposeAsync() => await server.DisposeAsync();

    [Theory]
    [InlineData("/v2/models/{name}/infer")]
    [InlineData("/v2/models/{name}/versions/{version}/infer")]
    public void InferRequestSchemaNamesFields(string path)
    {
        JsonObject operation = document.Operation(path, "post");

        JsonObject request = document.RequestSchema(operation);
        OpenApiSchemas.PropertyNames(request).ShouldBe(["id", "inputs", "outputs", "parameters"], ignoreOrder: true);
        OpenApiSchemas.RequiredNames(request).ShouldBe(["inputs"]);
        JsonObject input = document.PropertyOrItems(request, "inputs");
        OpenApiSchemas.PropertyNames(input).ShouldBe(["name", "shape", "datatype", "data", "parameters"], ignoreOrder: true);
        OpenApiSchemas.RequiredNames(input).ShouldBe(["name", "shape", "datatype", "data"], ignoreOrder: true);
        OpenApiSchemas.PropertyNames(document.PropertyOrItems(input, "parameters")).ShouldBe(["binary_data_size"]);
        JsonObject output = document.PropertyOrItems(request, "outputs");
        OpenApiSchemas.RequiredNames(output).ShouldBe(["name"]);
        OpenApiSchemas.PropertyNames(document.PropertyOrItems(output, "parameters")).ShouldBe(["binary_data"]);
        OpenApiSchemas.PropertyNames(document.PropertyOrItems(request, "parameters")).ShouldBe(["binary_data_output"]);
    }

    [Theory]
    [InlineData("/v2/models/{name}/infer")]
    [InlineData("/v2/models/{name}/versions/{version}/infer")]
    public void InferResponseSchemaNamesFields(string path)
    {
        JsonObject operation = document.Operation(path, "post");

        JsonObject response = document.ResponseSchema(operation, 200);
        OpenApiSchemas.PropertyNames(response).ShouldBe(["model_name", "model_version", "id", "outputs"], ignoreOrder: true);
        OpenApiSchemas.RequiredNames(response).ShouldBe(["model_name", "model_version", "outputs"], ignoreOrder: true);
        JsonObject output = document.PropertyOrItems(response, "outputs");
        OpenApiSchemas.PropertyNames(output).ShouldBe(["name", "datatype", "shape", "data", "parameters"], ignoreOrder: true);
        OpenApiSchemas.RequiredNames(output).ShouldBe(["name", "datatype", "shape"], ignoreOrder: true);
    }

    [Theory]
    [InlineData("/v2/models/{name}/infer")]
    [InlineData("/v2/models/{name}/versions/{version}/infer")]
    public void InferDeclaresBinaryTensorData(string path)
    {
        JsonObject operation = document.Operation(path, "post");

        operation["requestBody"]!["content"]!.AsObject().ContainsKey("application/octet-stream").ShouldBeTrue();
        operation["responses"]!["200"]!["content"]!.AsObject().ContainsKey("application/octet-stream").ShouldBeTrue();
        operation["responses"]!["200"]!["headers"]!.AsObject().ContainsKey("Inference-Header-Content-Length").ShouldBeTrue();
        operation["parameters"]!.AsArray().Select(parameter => parameter!["name"]!.GetValue<string>()).ShouldContain("Inference-Header-Content-Length");
    }

    [Fact]
    public void PredictSchemasNameFields()
    {
        JsonObject operation = document.Operation("/v1/models/{name}:predict", "post");

        JsonObject request = document.RequestSchema(operation);
        OpenApiSchemas.PropertyNames(request).ShouldBe(["instances"]);
        OpenApiSchemas.RequiredNames(request).ShouldBe(["instances"]);
        JsonObject response = document.ResponseSchema(operation, 200);
        OpenApiSchemas.PropertyNames(response).ShouldBe(["model_name", "model_version", "predictions"], ignoreOrder: true);
        OpenApiSchemas.PropertyNames(document.PropertyOrItems(response, "predictions")).ShouldBe(["label", "probabilities"], ignoreOrder: true);
        operation["requestBody"]!["content"]!.AsObject().Select(content => content.Key).ShouldBe(["application/json"]);
    }

    [Theory]
    [InlineData("/v2/models/{name}/infer")]
    [InlineData("/v2/models/{name}/versions/{version}/infer")]
    [InlineData("/v1/models/{name}:predict")]
    public void InferenceRoutesDeclareErrorBodies(string path)
    {
        JsonObject operation = document.Operation(path, "post");

        foreach (int statusCode in InferenceErrorStatusCodes)
        {
            JsonObject error = document.ResponseSchema(operation, statusCode);
            OpenApiSchemas.PropertyNames(error).ShouldBe(["error", "field", "expected"], ignoreOrder: true, $"status {statusCode}");
            OpenApiSchemas.RequiredNames(error).ShouldBe(["error"], $"status {statusCode}");
        }
    }

    [Fact]
    public void NumbersAreNotStrings()
    {
        JsonObject input = document.PropertyOrItems(document.RequestSchema(document.Operation("/v2/models/{name}/infer", "post")), "inputs");
        JsonObject instances = document.RequestSchema(document.Operation("/v1/models/{name}:predict", "post"))["properties"]!["instances"]!.AsObject();

        document.PropertyOrItems(input, "shape")["type"]!.ToJsonString().ShouldBe("\"integer\"");
        document.PropertyOrItems(input, "data")["type"]!.ToJsonString().ShouldBe("\"number\"");
        instances["items"]!["items"]!["type"]!.ToJsonString().ShouldBe("\"number\"");
    }

    [Fact]
    public void InferenceOperationsHaveSummaryAndBody()
    {
        JsonObject paths = document.Document["paths"]!.AsObject();
        string[] inferencePaths = [.. paths.Select(path => path.Key).Where(path => path.StartsWith("/v1/", StringComparison.Ordinal) || path.StartsWith("/v2", StringComparison.Ordinal))];

        inferencePaths.Length.ShouldBe(11);
        foreach (string path in inferencePaths)
        {
            foreach ((string method, JsonNode? operation) in paths[path]!.AsObject())
            {
                string? summary = operation!["summary"]?.GetValue<string>();
                summary.ShouldNotBeNullOrWhiteSpace($"{method} {path}");
                if (method != "head")
                {
                    operation["responses"]!["200"]!["content"]!["application/json"]!["schema"].ShouldNotBeNull($"{method} {path}");
                }
            }
        }
    }

    // Load balancers and probes send HEAD, so every inference GET route accepts it, and a generated client must see that.
    [Fact]
    public void InferenceGetRoutesDeclareHead()
    {
        JsonObject paths = document.Document["paths"]!.AsObject();
        string[] getPaths = [.. paths
            .Where(path => path.Key.StartsWith("/v1/", StringComparison.Ordinal) || path.Key.StartsWith("/v2", StringComparison.Ordinal))
            .Where(path => path.Value!.AsObject().ContainsKey("get"))
            .Select(path => path.Key)];

        getPaths.Length.ShouldBe(8);
        foreach (string path in getPaths)
        {
            JsonObject get = document.Operation(path, "get");
            JsonObject head = document.Operation(path, "head");
            string[] getStatusCodes = [.. get["responses"]!.AsObject().Select(response => response.Key)];
            head["responses"]!.AsObject().Select(response => response.Key).ShouldBe(getStatusCodes, ignoreOrder: true, $"HEAD {path}");
            foreach ((string statusCode, JsonNode? response) in head["responses"]!.AsObject())
            {
                response!["content"].ShouldBeNull($"HEAD {path} {statusCode} declares a body");
            }
        }
    }

    // Each GET route and its HEAD come from one endpoint, whose name would otherwise be the operationId of both.
    [Fact]
    public void OperationIdsAreUnique()
    {
        string[] operationIds = [.. document.Document["paths"]!.AsObject()
            .SelectMany(path => path.Value!.AsObject())
            .Select(operation => operation.Value!["operationId"]?.GetValue<string>())
            .OfType<string>()];

        operationIds.ShouldBeUnique();
        operationIds.ShouldContain("GetLive");
        operationIds.ShouldContain("HeadLive");
    }

    [Fact]
    public async Task ManagementOperationsDeclareAuthErrors()
    {
        await using ManagementServer management = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        OpenApiSchemas managementDocument = await OpenApiSchemas.FetchAsync(management.Inference);
        JsonObject paths = managementDocument.Document["paths"]!.AsObject();
        string[] managementPaths = [.. paths.Select(path => path.Key).Where(path => path.StartsWith("/manage/v1/", StringComparison.Ordinal))];

        managementPaths.Length.ShouldBe(8);
        managementDocument.Document["components"]!["securitySchemes"]!["bearer"]!["scheme"]!.GetValue<string>().ShouldBe("bearer");
        foreach (string path in managementPaths)
        {
            foreach ((string method, JsonNode? node) in paths[path]!.AsObject())
            {
                JsonObject operation = node!.AsObject();
                operation["security"]![0]!.AsObject().ContainsKey("bearer").ShouldBeTrue($"{method} {path}");
                if (method == "head")
                {
                    operation["responses"]!.AsObject().Select(response => response.Key).ShouldContain("401", $"{method} {path}");
                    operation["responses"]!.AsObject().Select(response => response.Key).ShouldContain("403", $"{method} {path}");
                    continue;
                }

                OpenApiSchemas.PropertyNames(managementDocument.ResponseSchema(operation, 401)).ShouldContain("error", $"{method} {path}");
                OpenApiSchemas.PropertyNames(managementDocument.ResponseSchema(operation, 403)).ShouldContain("error", $"{method} {path}");

                // Every management request reads or writes the model store, which can be gone or unwritable.
                OpenApiSchemas.PropertyNames(managementDocument.ResponseSchema(operation, 503)).ShouldContain("error", $"{method} {path}");
                managementDocument.ResponseSchema(operation, 200)["properties"].ShouldNotBeNull($"{method} {path}");
            }
        }
    }

    // HEAD on the status, management and store routes comes from the GET endpoint. Its operation needs an
    // operationId of its own, GET's status codes and no response body.
    [Theory]
    [InlineData("/ui/api/status", "HeadStatus")]
    [InlineData("/manage/v1/versions", "HeadListVersions")]
    [InlineData("/manage/v1/learning", "HeadLearningState")]
    [InlineData("/manage/v1/golden-set", "HeadGoldenSet")]
    [InlineData("/store/v1/versions", "HeadListStoreVersions")]
    [InlineData("/store/v1/versions/{version}/{file}", "HeadStoreFile")]
    public async Task GetRoutesDeclareHead(string path, string operationId)
    {
        OpenApiSchemas headDocument = path.StartsWith("/store/", StringComparison.Ordinal)
            ? await FetchStoreDocumentAsync(storeToken: "store-token-0123456789abcdef")
            : await FetchManagementDocumentAsync();

        JsonObject get = headDocument.Operation(path, "get");
        JsonObject head = headDocument.Operation(path, "head");

        head["operationId"]!.GetValue<string>().ShouldBe(operationId);
        string[] getStatusCodes = [.. get["responses"]!.AsObject().Select(response => response.Key)];
        head["responses"]!.AsObject().Select(response => response.Key).ShouldBe(getStatusCodes, ignoreOrder: true);
        foreach ((string statusCode, JsonNode? response) in head["responses"]!.AsObject())
        {
            response!["content"].ShouldBeNull($"HEAD {path} {statusCode} declares a body");
        }
    }

    [Fact]
    public async Task ManagementOperationIdsAreUnique()
    {
        OpenApiSchemas managementDocument = await FetchManagementDocumentAsync();

        string?[] operationIds = [.. managementDocument.Document["paths"]!.AsObject()
            .SelectMany(path => path.Value!.AsObject())
            .Select(operation => operation.Value!["operationId"]?.GetValue<string>())];

        operationIds.ShouldAllBe(id => id != null);
        operationIds.ShouldBeUnique();
    }

    [Fact]
    public async Task GoldenSetUploadDeclaresBody()
    {
        await using ManagementServer management = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        OpenApiSchemas managementDocument = await OpenApiSchemas.FetchAsync(management.Inference);
        JsonObject operation = managementDocument.Operation("/manage/v1/golden-set", "put");

        JsonObject request = managementDocument.RequestSchema(operation);
        OpenApiSchemas.RequiredNames(request).ShouldBe(["examples"]);
        OpenApiSchemas.RequiredNames(managementDocument.PropertyOrItems(request, "examples")).ShouldBe(["label", "features"], ignoreOrder: true);
        OpenApiSchemas.PropertyNames(managementDocument.ResponseSchema(operation, 200)).ShouldBe(["examples", "uploadedAt"], ignoreOrder: true);
    }

    [Fact]
    public async Task LearningRouteDeclaresLearnerState()
    {
        await using ManagementServer management = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        OpenApiSchemas managementDocument = await OpenApiSchemas.FetchAsync(management.Inference);
        JsonObject operation = managementDocument.Operation("/manage/v1/learning", "get");

        JsonObject learning = managementDocument.ResponseSchema(operation, 200);
        JsonObject learner = NonNullSchema(managementDocument, learning["properties"]!["learner"]);
        OpenApiSchemas.PropertyNames(learning).ShouldBe(["paused", "learner"], ignoreOrder: true);
        OpenApiSchemas.PropertyNames(learner).ShouldBe(
            [
                "running", "stopped", "ready", "paused", "brokerAvailable", "diverged", "roundWriteStalled", "fileReadStalled",
                "markerWriteStalled", "goldenSetUnusable", "currentTask", "trained", "rejected", "rollbacks", "latestVersion", "consumerLag",
                "assignedPartitions",
            ],
            ignoreOrder: true);

        // The lag and the assignment are null while the group has not assigned partitions to the learner.
        learner["properties"]!["consumerLag"]!["type"]!.ToJsonString().ShouldContain("\"null\"", Case.Sensitive);
        learner["properties"]!["assignedPartitions"]!["type"]!.ToJsonString().ShouldContain("\"null\"", Case.Sensitive);
    }

    // Mirrors the all role, which maps the store routes on the server application.
    [Fact]
    public void StatusRouteDeclaresSnapshot()
    {
        JsonObject operation = document.Operation("/ui/api/status", "get");

        JsonObject snapshot = document.ResponseSchema(operation, 200);
        OpenApiSchemas.PropertyNames(snapshot).ShouldBe(
            ["model", "version", "parentVersion", "createdAt", "examplesTrained", "evaluation", "versions", "traffic", "learner", "certificates", "generatedAt"],
            ignoreOrder: true);
        OpenApiSchemas.RequiredNames(snapshot).ShouldBe(["model", "versions", "traffic", "certificates", "generatedAt"], ignoreOrder: true);
    }

    [Fact]
    public async Task ModelStoreRoutesDeclareBodies()
    {
        OpenApiSchemas storeDocument = await FetchStoreDocumentAsync(storeToken: null);
        JsonObject list = storeDocument.Operation("/store/v1/versions", "get");
        JsonObject file = storeDocument.Operation("/store/v1/versions/{version}/{file}", "get");

        OpenApiSchemas.PropertyNames(storeDocument.ResponseSchema(list, 200)).ShouldBe(["versions"]);
        file["responses"]!["200"]!["content"]!.AsObject().Select(content => content.Key).ShouldBe(["application/json", "application/octet-stream"], ignoreOrder: true);
        OpenApiSchemas.RequiredNames(storeDocument.ResponseSchema(file, 400)).ShouldBe(["error"]);
        OpenApiSchemas.RequiredNames(storeDocument.ResponseSchema(file, 404)).ShouldBe(["error"]);
    }

    // A client generated from the document must know to send the store token, as it does for the management token.
    [Fact]
    public async Task StoreOperationsDeclareStoreToken()
    {
        OpenApiSchemas storeDocument = await FetchStoreDocumentAsync(storeToken: "store-token-0123456789abcdef");

        foreach (string path in new[] { "/store/v1/versions", "/store/v1/versions/{version}/{file}" })
        {
            JsonObject operation = storeDocument.Operation(path, "get");
            operation["security"].ShouldNotBeNull($"security of GET {path}");
            operation["security"]![0]!.AsObject().ContainsKey("storeBearer").ShouldBeTrue($"GET {path}");
            operation["security"]![0]!.AsObject().ContainsKey("bearer").ShouldBeFalse($"GET {path} takes the store token, not the management token");
        }

        JsonNode? scheme = storeDocument.Document["components"]?["securitySchemes"]?["storeBearer"];
        scheme.ShouldNotBeNull("components.securitySchemes.storeBearer");
        scheme["scheme"]!.GetValue<string>().ShouldBe("bearer");
    }

    private static async Task<OpenApiSchemas> FetchManagementDocumentAsync()
    {
        await using ManagementServer management = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        return await OpenApiSchemas.FetchAsync(management.Inference);
    }

    // A nullable object property is a oneOf of null and the object's schema, or the object's schema alone.
    private static JsonObject NonNullSchema(OpenApiSchemas schemas, JsonNode? property)
    {
        JsonObject schema = schemas.Resolve(property);
        JsonNode? choice = (schema["oneOf"] ?? schema["anyOf"])?.AsArray().FirstOrDefault(option => option?["type"]?.ToString() != "null");
        return choice is null ? schema : schemas.Resolve(choice);
    }

    // Starts a server with the model store API on an empty store, guarded by storeToken when it is set, and returns
    // its OpenAPI document. The store and the token file are deleted afterwards.
    private static async Task<OpenApiSchemas> FetchStoreDocumentAsync(string? storeToken)
    {
        string root = Directory.CreateTempSubdirectory("continualserve-openapi-store-").FullName;
        string directory = Path.Combine(root, "models");
        var arguments = new List<string> { "--Logging:LogLevel:Default=Warning" };
        if (storeToken is not null)
        {
            string tokenFile = Path.Combine(root, "store.token");
            await File.WriteAllTextAsync(tokenFile, storeToken);
            arguments.Add("--Distribution:StoreTokenFile=" + tokenFile);
        }

        var store = new ModelStore(directory);
        WebApplication app = ServerHost.Build(
            [.. arguments],
            "http://127.0.0.1:0",
            options => options.StoreDirectory = directory,
            pollStore: false,
            configureBuilder: builder => builder.Services.AddDistributionOptions());
        app.MapModelStoreApi(() => store);
        await app.StartAsync();
        try
        {
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var client = new HttpClient { BaseAddress = new Uri(address + "/"), Timeout = TimeSpan.FromSeconds(30) };
            return await OpenApiSchemas.FetchAsync(client);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            Directory.Delete(root, recursive: true);
        }
    }
}
