namespace ContinualServe.Server.Distribution;

/// <summary>
/// Body of GET /store/v1/versions, for the OpenAPI document only. The route writes an anonymous object of this shape.
/// </summary>
internal sealed record StoreVersionListResponse
{
    public required IReadOnlyList<long> Versions { get; init; }
}
