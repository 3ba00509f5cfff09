using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;

namespace ContinualServe.Server.Inference;

// Schema-only types for the OpenAPI document. The inference routes read and write their bodies by hand
// (InferenceRequestReader, InferenceResponseWriter, PredictRequestReader), so these records are never
// serialized. Each one mirrors the JSON that those readers accept or those writers emit, with the names of
// the Open Inference Protocol v2 specification.

/// <summary>Body of GET /v2.</summary>
internal sealed record ServerMetadataResponse
{
    public required string Name { get; init; }

    [Description("Assembly version of the server.")]
    public required string Version { get; init; }

    [Description("Protocol extensions the server supports: binary_tensor_data.")]
    public required IReadOnlyList<string> Extensions { get; init; }
}

/// <summary>Body of GET /v2/models/{name} and GET /v2/models/{name}/versions/{version}.</summary>
internal sealed record ModelMetadataResponse
{
    public required string Name { get; init; }

    [Description("The live version only, as a decimal string.")]
    public required IReadOnlyList<string> Versions { get; init; }

    [Description("Always torchsharp.")]
    public required string Platform { get; init; }

    [Description("Architecture name from the model spec, such as mlp.")]
    public required string Architecture { get; init; }

    [Description("Class names, indexed by label.")]
    public required IReadOnlyList<string> Labels { get; init; }

    [Description("One FP32 tensor named input, of shape [-1, features].")]
    public required IReadOnlyList<MetadataTensor> Inputs { get; init; }

    [Description("probabilities (FP32, [-1, classes]) and label (INT64, [-1]).")]
    public required IReadOnlyList<MetadataTensor> Outputs { get; init; }
}

/// <summary>Name, datatype and shape of one model input or output. A dimension of -1 matches any size.</summary>
internal sealed record MetadataTensor
{
    public required string Name { get; init; }

    public required string Datatype { get; init; }

    public required IReadOnlyList<long> Shape { get; init; }
}

/// <summary>Body of POST /v2/models/{name}/infer, or its JSON header when binary tensor data follows.</summary>
internal sealed record InferenceRequest
{
    [Description("Request id, copied into the response.")]
    public string? Id { get; init; }

    [Description("Exactly one tensor, named input.")]
    [Length(1, 1)]
    public required IReadOnlyList<RequestInput> Inputs { get; init; }

    [Description("Outputs to return, in this order, each at most once. Absent or empty: every output.")]
    public IReadOnlyList<RequestOutput> Outputs { get; init; } = [];

    public InferenceRequestParameters Parameters { get; init; } = new();
}

/// <summary>Request-level parameters. The server reads binary_data_output and ignores other keys.</summary>
internal sealed record InferenceRequestParameters
{
    [JsonPropertyName("binary_data_output")]
    [Description("Return every output as binary tensor data unless the output's own binary_data says otherwise. Default false.")]
    public bool BinaryDataOutput { get; init; }
}

/// <summary>The input tensor of an inference request.</summary>
internal sealed record RequestInput
{
    [Description("Must be input.")]
    public required string Name { get; init; }

    [Description("[N, features], with 1 <= N <= Server:MaxBatchSize and features as in the model metadata.")]
    public required IReadOnlyList<long> Shape { get; init; }

    [Description("Must be FP32.")]
    public required string Datatype { get; init; }

    [Description(
        "N * features finite numbers, row by row. Nested arrays (one per row) are accepted as well. "
        + "Required in a JSON body. With the binary tensor data extension, parameters.binary_data_size replaces it.")]
    public required IReadOnlyList<float> Data { get; init; }

    public RequestInputParameters Parameters { get; init; } = new();
}

/// <summary>Input parameters. The server reads binary_data_size and ignores other keys.</summary>
internal sealed record RequestInputParameters
{
    [JsonPropertyName("binary_data_size")]
    [Description("Length in bytes of the input's raw little-endian FP32 data after the JSON header, a multiple of 4. Replaces data.")]
    public long BinaryDataSize { get; init; }
}

/// <summary>One output that an inference request names.</summary>
internal sealed record RequestOutput
{
    [Description("probabilities or label.")]
    public required string Name { get; init; }

    public RequestOutputParameters Parameters { get; init; } = new();
}

/// <summary>Output parameters. The server reads binary_data and ignores other keys.</summary>
internal sealed record RequestOutputParameters
{
    [JsonPropertyName("binary_data")]
    [Description("Return this output as binary tensor data. Overrides the request's binary_data_output.")]
    public bool BinaryData { get; init; }
}

/// <summary>Body of a successful inference, or its JSON header when binary tensor data follows.</summary>
internal sealed record InferenceResponse
{
    [JsonPropertyName("model_name")]
    public required string ModelName { get; init; }

    [JsonPropertyName("model_version")]
    [Description("Version whose weights computed the outputs, as a decimal string.")]
    public required string ModelVersion { get; init; }

    [Description("The request's id. Absent when the request had none or sent null.")]
    public string Id { get; init; } = "";

    [Description("The requested outputs in request order, or probabilities then label.")]
    public required IReadOnlyList<ResponseOutput> Outputs { get; init; }
}

/// <summary>One output tensor of an inference response.</summary>
internal sealed record ResponseOutput
{
    [Description("probabilities or label.")]
    public required string Name { get; init; }

    [Description("FP32 for probabilities, INT64 for label.")]
    public required string Datatype { get; init; }

    [Description("[N, classes] for probabilities, [N] for label.")]
    public required IReadOnlyList<long> Shape { get; init; }

    [Description("Values row by row. Absent when the output is binary.")]
    public IReadOnlyList<double> Data { get; init; } = [];

    [Description("Present only when the output is binary.")]
    public ResponseOutputParameters Parameters { get; init; } = new();
}

/// <summary>Parameters of a binary output.</summary>
internal sealed record ResponseOutputParameters
{
    [JsonPropertyName("binary_data_size")]
    [Description("Length in bytes of the output's raw little-endian data after the JSON header.")]
    [JsonRequired]
    public long BinaryDataSize { get; init; }
}

/// <summary>Body of GET /v2/health/live.</summary>
internal sealed record LiveResponse
{
    [Description("Always true.")]
    public required bool Live { get; init; }
}

/// <summary>Body of GET /v2/health/ready: 200 with true, or 503 with false before a version is loaded.</summary>
internal sealed record ReadyResponse
{
    public required bool Ready { get; init; }
}

/// <summary>Body of GET /v2/models/{name}/ready and GET /v1/models/{name}: 200 with true, 503 with false.</summary>
internal sealed record ModelReadyResponse
{
    public required string Name { get; init; }

    public required bool Ready { get; init; }
}

/// <summary>Body of GET /v2/models/{name}/versions/{version}/ready when the version is the live one.</summary>
internal sealed record VersionReadyResponse
{
    public required string Name { get; init; }

    [Description("The version path segment as sent.")]
    public required string Version { get; init; }

    [Description("Always true. Any other version gets 404.")]
    public required bool Ready { get; init; }
}

/// <summary>Body of POST /v1/models/{name}:predict.</summary>
internal sealed record PredictRequest
{
    [MinLength(1)]
    [Description("1 to Server:MaxBatchSize rows, each a flat array of the model's features as finite numbers.")]
        public required IReadOnlyList<IReadOnlyList<float>> Instances { get; init; }
}

/// <summary>Body of a successful V1 prediction.</summary>
internal sealed record PredictResponse
{
    [JsonPropertyName("model_name")]
    public required string ModelName { get; init; }

    [JsonPropertyName("model_version")]
    [Description("Version whose weights computed the predictions, as a decimal string.")]
    public required string ModelVersion { get; init; }

    [Description("One prediction per instance, in request order.")]
    public required IReadOnlyList<Prediction> Predictions { get; init; }
}

/// <summary>The prediction for one instance.</summary>
internal sealed record Prediction
{
    [Description("Index of the most probable class.")]
    public required int Label { get; init; }

    [Description("Probability of every class, indexed by label.")]
    public required IReadOnlyList<float> Probabilities { get; init; }
}
