using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using ContinualServe.Server.Inference;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// OpenAPI metadata for the routes that read and write their bodies by hand: request body schemas, the JSON error
/// body, the bearer tokens of the management and model store routes, and the binary tensor data extension of the
/// inference routes.
/// </summary>
internal static class OpenApiMetadata
{
    private const string BearerSchemeName = "bearer";
    private const string StoreBearerSchemeName = "storeBearer";

    /// <summary>Declares <see cref="InferenceError"/> as the body of each of <paramref name="statusCodes"/>.</summary>
    public static TBuilder ProducesErrors<TBuilder>(this TBuilder builder, params int[] statusCodes)
        where TBuilder : IEndpointConventionBuilder
    {
        foreach (int statusCode in statusCodes)
        {
            builder.WithMetadata(new ProducesResponseTypeMetadata(statusCode, typeof(InferenceError), [InferenceError.ContentType]));
        }

        return builder;
    }

    /// <summary>
    /// Declares <typeparamref name="TBody"/> as the required request body in <paramref name="contentType"/>, in the
    /// OpenAPI document only. <c>Accepts&lt;T&gt;</c> would also make routing reject every other Content-Type with an
    /// empty 415 before the handler runs, but the handlers check Content-Type themselves and return a JSON error.
    /// </summary>
    public static RouteHandlerBuilder WithRequestBody<TBody>(this RouteHandlerBuilder builder, string contentType) =>
        builder.AddOpenApiOperationTransformer(async (operation, context, cancellationToken) =>
        {
            JsonSerializerOptions json = context.ApplicationServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
            IOpenApiSchema schema = await GetComponentSchemaAsync(typeof(TBody), context, json, cancellationToken).ConfigureAwait(false);
            operation.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Content = new Dictionary<string, OpenApiMediaType> { [contentType] = new OpenApiMediaType { Schema = schema } },
            };
        });

    // Adds the schema of a request body type to the document's components, named after the type, and returns a
    // reference to it. GetOrCreateSchemaAsync (Microsoft.AspNetCore.OpenApi 10.0) inlines nested types, so the
    // schemas of this assembly's nested types become components too, which gives generated clients named types.
    private static async Task<IOpenApiSchema> GetComponentSchemaAsync(
        Type type, OpenApiOperationTransformerContext context, JsonSerializerOptions json, CancellationToken cancellationToken)
    {
        OpenApiDocument document = context.Document ?? throw new InvalidOperationException("The OpenAPI transformer context has no document.");
        if (document.Components?.Schemas?.ContainsKey(type.Name) != true)
        {
            OpenApiSchema schema = await context.GetOrCreateSchemaAsync(type, parameterDescription: null, cancellationToken).ConfigureAwait(false);
            foreach (JsonPropertyInfo property in json.GetTypeInfo(type).Properties)
            {
                Type? nestedType = NestedSchemaType(property.PropertyType, out bool isList);
                IOpenApiSchema? propertySchema = null;
                if (nestedType is null || schema.Properties?.TryGetValue(property.Name, out propertySchema) != true)
                {
                    continue;
                }

                IOpenApiSchema nested = await GetComponentSchemaAsync(nestedType, context, json, cancellationToken).ConfigureAwait(false);
                if (isList && propertySchema is OpenApiSchema listSchema)
                {
                    listSchema.Items = nested;
                }
                else
                {
                    schema.Properties[property.Name] = nested;
                }
            }

            document.AddComponent(type.Name, (IOpenApiSchema)schema);
        }

        return new OpenApiSchemaReference(type.Name, document);
    }

    // Returns the schema record type of a property (or of its list items) when it is declared in this assembly.
    private static Type? NestedSchemaType(Type propertyType, out bool isList)
    {
        isList = propertyType.IsGenericType && propertyType.GetGenericTypeDefinition() == typeof(IReadOnlyList<>);
        Type candidate = isList ? propertyType.GetGenericArguments()[0] : propertyType;
        return candidate.IsClass && candidate.Assembly == typeof(OpenApiMetadata).Assembly ? candidate : null;
    }

    /// <summary>
    /// Declares a 200 response in each of <paramref name="contentTypes"/> without a schema, for a route that sends
    /// files. <c>Produces</c> without a response type would list no content types at all.
    /// </summary>
    public static RouteHandlerBuilder ProducesFile(this RouteHandlerBuilder builder, params string[] contentTypes) =>
        builder.AddOpenApiOperationTransformer((operation, context, cancellationToken) =>
        {
            operation.Responses ??= new OpenApiResponses();
            if (operation.Responses.GetValueOrDefault("200") is not OpenApiResponse ok)
            {
                ok = new OpenApiResponse { Description = "OK" };
                operation.Responses["200"] = ok;
            }

            // MapGetAndHead's transformer, which removes the response bodies of HEAD, runs before this one, so HEAD gets no content here.
            if (HttpMethods.IsHead(context.Description.HttpMethod ?? string.Empty))
            {
                return Task.CompletedTask;
            }

            ok.Content ??= new Dictionary<string, OpenApiMediaType>();
            foreach (string contentType in contentTypes)
            {
                ok.Content[contentType] = new OpenApiMediaType();
            }

            return Task.CompletedTask;
        });

    /// <summary>Marks the operations as requiring the management token as a bearer token, and adds that scheme to the document.</summary>
    public static TBuilder WithBearerSecurity<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithBearerScheme(
            BearerSchemeName,
            "The management token, from Management:TokenFile or the CONTINUALSERVE_MANAGEMENT_TOKEN variable.");

    /// <summary>Marks the operations as requiring the model store token as a bearer token, and adds that scheme to the document.</summary>
    public static TBuilder WithStoreBearerSecurity<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithBearerScheme(
            StoreBearerSchemeName,
            "The model store token, from Distribution:StoreTokenFile or the CONTINUALSERVE_STORE_TOKEN variable.");

    private static TBuilder WithBearerScheme<TBuilder>(this TBuilder builder, string schemeName, string description)
        where TBuilder : IEndpointConventionBuilder =>
        builder.AddOpenApiOperationTransformer((operation, context, cancellationToken) =>
        {
            OpenApiDocument? document = context.Document;
            if (document is null)
            {
                return Task.CompletedTask;
            }

            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes.TryAdd(schemeName, new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = description,
            });
            operation.Security ??= [];
            operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(schemeName, document)] = [] });
            return Task.CompletedTask;
        });

    /// <summary>
    /// Adds <c>application/octet-stream</c> to the request body and the 200 response, and the optional
    /// <c>Inference-Header-Content-Length</c> header to both. Such a body is a JSON header followed by raw tensor
    /// bytes, so the media type carries no schema. Its JSON header has the schema of the JSON body.
    /// </summary>
    public static RouteHandlerBuilder WithBinaryTensorData(this RouteHandlerBuilder builder) =>
        builder.AddOpenApiOperationTransformer((operation, context, cancellationToken) =>
        {
            operation.Parameters ??= [];
            operation.Parameters.Add(new OpenApiParameter
            {
                Name = InferenceApi.BinaryHeaderName,
                In = ParameterLocation.Header,
                Required = false,
                Description = "Length in bytes of the JSON header at the start of the body. Without it the whole body is JSON.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.Integer, Minimum = "0" },
            });
            if (operation.RequestBody?.Content is { } requestContent)
            {
                requestContent[InferenceApi.BinaryContentType] = new OpenApiMediaType();
            }

            if (operation.Responses?.TryGetValue("200", out IOpenApiResponse? ok) == true && ok is OpenApiResponse response)
            {
                response.Content ??= new Dictionary<string, OpenApiMediaType>();
                response.Content[InferenceApi.BinaryContentType] = new OpenApiMediaType();
                response.Headers ??= new Dictionary<string, IOpenApiHeader>();
                response.Headers[InferenceApi.BinaryHeaderName] = new OpenApiHeader
                {
                    Description = "Length in bytes of the JSON header. Sent only with application/octet-stream, when an output is binary.",
                    Schema = new OpenApiSchema { Type = JsonSchemaType.Integer },
                };
            }

            return Task.CompletedTask;
        });
}
