using System.Buffers;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Middleware for requests whose body Kestrel will not read in full: a declared Content-Length over
/// <see cref="ServerOptions.MaxRequestBodyBytes"/>, a 413 found while reading a chunked body, or a 408 for a body that
/// arrived slower than the <see cref="HttpLimitsOptions"/> rate. Their responses carry <c>Connection: close</c>,
/// because Kestrel closes those connections after the response. A declared body up to <see cref="MaxDrainFactor"/>
/// times the limit is then read and discarded for at most <see cref="DrainTimeout"/>, because clients that send the
/// whole body before they read the response, such as Python's http.client, otherwise get a reset connection instead
/// of the status.
/// </summary>
public static class OversizedBodyClose
{
    /// <summary>Largest declared body that is drained after its response, as a multiple of the body limit.</summary>
    public const int MaxDrainFactor = 2;

    /// <summary>
    /// Longest time spent draining one body: the fixed timeout of Kestrel's own drain of unread bodies within the
    /// limit, as the ASP.NET Core Kestrel documentation gives it ("Request draining").
    /// </summary>
    public static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(5);

    private const int DrainBufferBytes = 16 * 1024;

    public static WebApplication UseOversizedBodyClose(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        long maxBytes = app.Services.GetRequiredService<IOptions<ServerOptions>>().Value.MaxRequestBodyBytes;
        app.Use(async (context, next) =>
        {
            long? declared = context.Request.ContentLength;
            if (declared > maxBytes)
            {
                context.Response.Headers.Connection = "close";
                await next(context).ConfigureAwait(false);
                await DrainAsync(context, declared.Value, maxBytes).ConfigureAwait(false);
                return;
            }

            if (declared > 0 || context.Request.Headers.TransferEncoding.Count > 0)
            {
                // Kestrel stops reading a chunked body at the limit, so the rest of it cannot be drained, and it stops
                // reading a body that falls below the minimum rate.
                context.Response.OnStarting(() =>
                {
                    if (context.Response.StatusCode is StatusCodes.Status413PayloadTooLarge or StatusCodes.Status408RequestTimeout)
                    {
                        context.Response.Headers.Connection = "close";
                    }

                    return Task.CompletedTask;
                });
            }

            await next(context).ConfigureAwait(false);
        });
        return app;
    }

    // Sends the response first, then reads the body that the client may still be sending. A client that waits for
    // "100 Continue" sends no body after a final status, so there is nothing to drain.
    private static async Task DrainAsync(HttpContext context, long declared, long maxBytes)
    {
        bool expectsContinue = context.Request.Headers.Expect.Any(value => string.Equals(value, "100-continue", StringComparison.OrdinalIgnoreCase));
        IHttpMaxRequestBodySizeFeature? limit = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (expectsContinue || declared > maxBytes * MaxDrainFactor || limit is null || limit.IsReadOnly || context.RequestAborted.IsCancellationRequested)
        {
            return;
        }

        limit.MaxRequestBodySize = declared;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(DrainBufferBytes);
        try
        {
            await context.Response.CompleteAsync().ConfigureAwait(false);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
            timeout.CancelAfter(DrainTimeout);
            while (await context.Request.Body.ReadAsync(buffer, timeout.Token).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (Exception exception) when (exception is IOException or OperationCanceledException)
        {
            // The client stopped sending or disconnected. Connection: close already ends the connection.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
