namespace ContinualServe.Server.Inference;

/// <summary>
/// An output that a response carries, in request order. <see cref="Binary"/> is set when the output travels as
/// raw little-endian bytes after the JSON header (the protocol's binary tensor data extension).
/// </summary>
public readonly record struct RequestedOutput(string Name, bool Binary);
