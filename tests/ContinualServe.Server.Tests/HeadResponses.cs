using System.Net;
using System.Net.Http.Headers;
using Shouldly;

namespace ContinualServe.Server.Tests;

/// <summary>Compares a HEAD response with the GET response of the same path.</summary>
internal static class HeadResponses
{
    // Headers that may differ between the two: the time of the response, and the framing of a body that HEAD lacks.
    private static readonly HashSet<string> IgnoredHeaders = new(StringComparer.OrdinalIgnoreCase) { "Date", "Transfer-Encoding", "Content-Length" };

    /// <summary>
    /// Sends GET and then HEAD to <paramref name="path"/>, and checks that both have status <paramref name="expected"/>
    /// and the same headers, and that HEAD has an empty body. With <paramref name="withContentLength"/>, GET must send
    /// Content-Length with the length of its body, and HEAD the same Content-Length.
    /// </summary>
    public static async Task ShouldMatchGetAsync(
        HttpClient client, string path, HttpStatusCode expected, bool withContentLength = false, string? bearerToken = null)
    {
        using HttpResponseMessage get = await client.SendAsync(Request(HttpMethod.Get, path, bearerToken));
        byte[] getBody = await get.Content.ReadAsByteArrayAsync();
        using HttpResponseMessage head = await client.SendAsync(Request(HttpMethod.Head, path, bearerToken));

        get.StatusCode.ShouldBe(expected, $"GET {path}");
        head.StatusCode.ShouldBe(expected, $"HEAD {path}");
        Headers(head).ShouldBe(Headers(get), $"headers of HEAD {path}");
        (await head.Content.ReadAsByteArrayAsync()).ShouldBeEmpty($"body of HEAD {path}");
        if (withContentLength)
        {
            get.Content.Headers.ContentLength.ShouldBe(getBody.Length, $"Content-Length of GET {path}");
            head.Content.Headers.ContentLength.ShouldBe(getBody.Length, $"Content-Length of HEAD {path}");
        }
    }

    private static HttpRequestMessage Request(HttpMethod method, string path, string? bearerToken)
    {
        var request = new HttpRequestMessage(method, path);
        if (bearerToken is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearerToken);
        }

        return request;
    }

    private static List<string> Headers(HttpResponseMessage response) =>
        [.. response.Headers.Concat(response.Content.Headers)
            .Where(header => !IgnoredHeaders.Contains(header.Key))
            .Select(header => $"{header.Key}: {string.Join(", ", header.Value)}")
            .Order(StringComparer.Ordinal)];
}
