using System.ComponentModel;

namespace ContinualServe.Server.Inference;

/// <summary>A client error: which field is wrong, and what was expected. Serialized as the response body.</summary>
public sealed record InferenceError(
    [property: Description("What failed, as a sentence.")] string Error,
    [property: Description("The body field, header, path segment or method that is invalid. Null when no single one is.")] string? Field = null,
    [property: Description("The value or form that the server expects. Null when nothing specific is.")] string? Expected = null)
{
    /// <summary>
    /// Media type of error bodies, without the charset parameter that ASP.NET Core adds by default: the KServe
    /// Python client shows a server's error text only when Content-Type is exactly <c>application/json</c>.
    /// </summary>
    public const string ContentType = "application/json";

    /// <summary>Returns a result with status <paramref name="statusCode"/> and this error as its body.</summary>
    public IResult ToResult(int statusCode) => Results.Json(this, options: null, ContentType, statusCode);

    /// <summary>Writes <paramref name="statusCode"/> and this error as the response body.</summary>
    public async Task WriteAsync(HttpContext context, int statusCode)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.StatusCode = statusCode;
        await context.Response.WriteAsJsonAsync(this, options: null, ContentType, context.RequestAborted).ConfigureAwait(false);
    }
}
