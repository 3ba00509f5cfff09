using System.Net;
using ContinualServe.Server.Hosting;
using ContinualServe.Server.Inference;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Hosting;

public sealed class BearerTokenFilterTests : IDisposable
{
    private const string Token = "filter-token-0123456789abcdef";

    private readonly string root = Directory.CreateTempSubdirectory("continualserve-token-filter-").FullName;
    private readonly LogRecorder<BearerTokenFilterTests> logger = new(LogLevel.Warning);
    private readonly BearerTokenFilter filter;

    public BearerTokenFilterTests()
    {
        string tokenFile = Path.Combine(root, "token");
        File.WriteAllText(tokenFile, Token);
        filter = new BearerTokenFilter(BearerToken.TryLoad(tokenFile, "", "management")!, "management API", null, null, logger);
    }

    public void Dispose()
    {
        filter.Dispose();
        Directory.Delete(root, recursive: true);
    }

    [Fact]
    public async Task RejectionsAreLoggedOncePerInterval()
    {
        string[] guesses = ["Bearer guess-0000000000000001", "Bearer guess-0000000000000002", "Basic dXNlcjpwYXNz"];

        int[] statusCodes = [.. await Task.WhenAll(guesses.Select(InvokeAsync))];

        statusCodes.ShouldBe([403, 403, 401]);
        var warnings = logger.Entries.Where(entry => entry.EventId == 520).ToList();
        warnings.Count.ShouldBe(1, "warnings within one interval");
        warnings[0].Level.ShouldBe(LogLevel.Warning);
        warnings[0].Message.ShouldContain("management API");
        warnings[0].Message.ShouldContain("192.0.2.7");
        warnings[0].Message.ShouldContain("/manage/v1/versions");
    }

    [Fact]
    public async Task HeldBackRejectionsAreLoggedWhenIntervalEnds()
    {
        using var shortFilter = new BearerTokenFilter(
            BearerToken.TryLoad(Path.Combine(root, "token"), "", "management")!, "management API", null, null, logger, TimeSpan.FromMilliseconds(200));

        for (int request = 0; request < 51; request++)
        {
            (await InvokeAsync(shortFilter, "Bearer guess-0000000000000001", "/manage/v1/versions")).ShouldBe(403);
        }

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (Warnings().Count < 2 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        List<string> warnings = Warnings();
        warnings.Count.ShouldBe(2);
        warnings[0].ShouldContain("rejected 1 request(s)");
        warnings[1].ShouldContain("rejected 50 request(s)");
    }

    [Fact]
    public async Task DisposeLogsHeldBackRejections()
    {
        for (int request = 0; request < 3; request++)
        {
            await InvokeAsync("Bearer guess-0000000000000001");
        }

        filter.Dispose();

        List<string> warnings = Warnings();
        warnings.Count.ShouldBe(2);
        warnings[1].ShouldContain("rejected 2 request(s)");
    }

    [Fact]
    public async Task WarningOmitsPresentedHeader()
    {
        await InvokeAsync("Bearer store-token-that-is-no-management-token");

        string warning = logger.Entries.Single(entry => entry.EventId == 520).Message;
        warning.ShouldNotContain("store-token-that-is-no-management-token");
        warning.ShouldNotContain(Token);
    }

    // Route parameters such as a store file name are the client's text, up to Kestrel's 8 KiB request line.
    [Fact]
    public async Task WarningTruncatesLongPath()
    {
        string path = "/store/v1/versions/1/" + new string('x', 4_000);

        await InvokeAsync("Bearer guess-0000000000000001", path);

        string warning = logger.Entries.Single(entry => entry.EventId == 520).Message;
        warning.ShouldContain(ClientText.Truncate(path));
        warning.ShouldContain("... (4021 characters)");
        warning.Length.ShouldBeLessThan(400);
    }

    [Fact]
    public async Task ValidTokenLogsNothing()
    {
        int statusCode = await InvokeAsync("Bearer " + Token);

        statusCode.ShouldBe(200);
        logger.Entries.ShouldBeEmpty();
    }

    private async Task<int> InvokeAsync(string authorization) => await InvokeAsync(authorization, "/manage/v1/versions");

    private async Task<int> InvokeAsync(string authorization, string path) => await InvokeAsync(filter, authorization, path);

    private List<string> Warnings() => [.. logger.Entries.Where(entry => entry.EventId == 520).Select(entry => entry.Message)];

    private static async Task<int> InvokeAsync(BearerTokenFilter tokenFilter, string authorization, string path)
    {
        var http = new DefaultHttpContext();
        http.Request.Method = "GET";
        http.Request.Path = path;
        http.Request.Headers.Authorization = authorization;
        http.Connection.RemoteIpAddress = IPAddress.Parse("192.0.2.7");
        object? result = await tokenFilter.InvokeAsync(
            EndpointFilterInvocationContext.Create(http),
            _ => ValueTask.FromResult<object?>(Results.Ok()));
        return result.ShouldBeAssignableTo<IStatusCodeHttpResult>().ShouldNotBeNull().StatusCode ?? 0;
    }
}
