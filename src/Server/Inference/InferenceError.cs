namespace ContinualServe.Server.Inference;

/// <summary>A client error: which field is wrong, and what was expected. Serialized as the response body.</summary>
public sealed record InferenceError(string Error, string? Field = null, string? Expected = null);
