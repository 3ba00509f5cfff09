using System.Net;
using Shouldly;

namespace ContinualServe.Server.Tests;

/// <summary>Compares a HEAD response with the GET response of the same path.</summary>
internal static class HeadResponses
{
    // Headers that may differ between the two: the time of the response, and the framing of a body that HEAD lacks.
    private static readonly HashSet<string> IgnoredHeaders = new(StringComparer.OrdinalIgnoreCase) { "Date", "Transfer-Encoding", "Content-Length" };

    /// <summary>
    /// Sends GET and then HEAD to <paramref name="path"/>, and checks that both have status <paramref name="expected"/>
    /// and the same headers, and that HEAD has an empty body.
    /// </summary>
    public static async Task ShouldMatchGetAsync(HttpClient client, string path, HttpStatusCode expected)
    {
        using HttpResponseMessage get = await client.GetAsync(path);
        using var request = new HttpRequestMessage(HttpMethod.Head, path);
        using HttpResponseMessage head = await client.SendAsync(request);

        get.StatusCode.ShouldBe(expected, $"GET {path}");
        head.StatusCode.ShouldBe(expected, $"HEAD {path}");
        Headers(head).ShouldBe(Headers(get), $"headers of HEAD {path}");
        (await head.Content.ReadAsByteArrayAsync()).ShouldBeEmpty($"body of HEAD {path}");
    }

    private static List<string> Headers(HttpResponseMessage response) =>
        [.. response.Headers.Concat(response.Content.Headers)
            .Where(header => !IgnoredHeaders.Contains(header.Key))
            .Select(header => $"{header.Key}: {string.Join(", ", header.Value)}")
            .Order(StringComparer.Ordinal)];
}
