using System.Text.Json.Nodes;

namespace ContinualServe.Server.Tests.OpenApi;

/// <summary>Lookups in a served OpenAPI document: operations, their body schemas, and schemas behind <c>$ref</c>.</summary>
internal sealed class OpenApiSchemas
{
    private readonly JsonObject document;

    private OpenApiSchemas(JsonObject document) => this.document = document;

    public JsonObject Document => document;

    public static async Task<OpenApiSchemas> FetchAsync(HttpClient client)
    {
        string text = await client.GetStringAsync("openapi/v1.json");
        return new OpenApiSchemas(JsonNode.Parse(text)!.AsObject());
    }

    /// <summary>Returns the operation of <paramref name="method"/> (lower case, as in the document) on <paramref name="path"/>.</summary>
    public JsonObject Operation(string path, string method)
    {
        JsonNode? operation = document["paths"]?[path]?[method];
        return operation?.AsObject() ?? throw new InvalidOperationException($"The document has no {method} {path} operation.");
    }

    /// <summary>Returns the resolved schema of the operation's request body in <paramref name="contentType"/>.</summary>
    public JsonObject RequestSchema(JsonObject operation, string contentType = "application/json") =>
        Resolve(operation["requestBody"]?["content"]?[contentType]?["schema"]);

    /// <summary>Returns the resolved schema of the operation's <paramref name="statusCode"/> response in <paramref name="contentType"/>.</summary>
    public JsonObject ResponseSchema(JsonObject operation, int statusCode, string contentType = "application/json") =>
        Resolve(operation["responses"]?[statusCode.ToString(System.Globalization.CultureInfo.InvariantCulture)]?["content"]?[contentType]?["schema"]);

    /// <summary>Follows a <c>#/components/schemas/</c> reference, or returns an inline schema as it is.</summary>
    public JsonObject Resolve(JsonNode? schema)
    {
        JsonObject inline = schema?.AsObject() ?? throw new InvalidOperationException("The schema is missing.");
        string? reference = inline["$ref"]?.GetValue<string>();
        if (reference is null)
        {
            return inline;
        }

        const string Prefix = "#/components/schemas/";
        if (!reference.StartsWith(Prefix, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"Reference {reference} is not a component schema.");
        }

        JsonNode? target = document["components"]?["schemas"]?[reference[Prefix.Length..]];
        return target?.AsObject() ?? throw new InvalidOperationException($"Reference {reference} does not resolve.");
    }

    public static IReadOnlyList<string> PropertyNames(JsonObject schema) =>
        schema["properties"]?.AsObject().Select(property => property.Key).ToList() ?? [];

    public static IReadOnlyList<string> RequiredNames(JsonObject schema) =>
        schema["required"]?.AsArray().Select(name => name!.GetValue<string>()).ToList() ?? [];

    /// <summary>Returns the resolved schema of property <paramref name="name"/>, or of its items when it is an array.</summary>
    public JsonObject PropertyOrItems(JsonObject schema, string name)
    {
        JsonObject property = Resolve(schema["properties"]?[name]);
        return property["items"] is JsonNode items ? Resolve(items) : property;
    }
}
