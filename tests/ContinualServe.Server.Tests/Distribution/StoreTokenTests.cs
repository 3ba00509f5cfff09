using System.Net;
using System.Net.Http.Headers;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model.Store;
using ContinualServe.Server.Distribution;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Options;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>The learner's model store behind a store token, and a replica's download with and without it.</summary>
public sealed class StoreTokenTests : IAsyncLifetime, IDisposable
{
    private const string Token = "store-token-tests-0123456789";
    private readonly string root = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
    private readonly HttpClient http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private WebApplication? learner;
    private ModelStore source = null!;
    private string storeUrl = "";

    public async Task InitializeAsync()
    {
        source = new ModelStore(Path.Combine(root, "learner"));
        torch.manual_seed(3);
        using nn.Module<Tensor, Tensor> module = Model.ModelFactory.Create(RunningServer.Spec);
        source.Save(RunningServer.Spec, module, new ModelManifest());
        string tokenFile = Path.Combine(root, "store-token");
        await File.WriteAllTextAsync(tokenFile, Token + "\n");
        (learner, storeUrl) = await StoreServer.StartAsync(source, tokenFile);
    }

    public void Dispose() => http.Dispose();

    public async Task DisposeAsync()
    {
        if (learner is not null)
        {
            await learner.DisposeAsync();
        }

        Directory.Delete(root, recursive: true);
    }

    [Theory]
    [InlineData(null, HttpStatusCode.Unauthorized)]
    [InlineData("Basic dXNlcjpwYXNz", HttpStatusCode.Unauthorized)]
    [InlineData("Bearer wrong-token-0123456789", HttpStatusCode.Forbidden)]
    [InlineData("Bearer " + Token, HttpStatusCode.OK)]
    public async Task StoreRoutesNeedToken(string? authorization, HttpStatusCode expected)
    {
        foreach (string path in new[] { "store/v1/versions", "store/v1/versions/1/weights.bin" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(storeUrl), path));
            if (authorization is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", authorization);
            }

            using HttpResponseMessage response = await http.SendAsync(request);

            response.StatusCode.ShouldBe(expected, path);
            if (expected == HttpStatusCode.Unauthorized)
            {
                response.Headers.WwwAuthenticate.ToString().ShouldBe("Bearer");
            }
        }
    }

    // Requests that routing alone rejects with 405 (a method that the path does not accept) or 404 (no such path).
    public static TheoryData<string, string, int, string?> WrongMethodsAndPaths => new()
    {
        { "POST", "store/v1/versions", 405, "GET, HEAD" },
        { "DELETE", "store/v1/versions/1/weights.bin", 405, "GET, HEAD" },
        { "PUT", "store/v1/versions/1/manifest.json", 405, "GET, HEAD" },
        { "GET", "store/v1/no-such-route", 404, null },
        { "POST", "store/v1", 404, null },
        { "GET", "STORE/V1/VERSIONS/1", 404, null },
    };

    [Theory]
    [MemberData(nameof(WrongMethodsAndPaths))]
    public async Task TokenIsCheckedBeforeMethodAndPath(string method, string path, int statusWithToken, string? allow)
    {
        using HttpResponseMessage missing = await SendAsync(method, path, token: null);
        using HttpResponseMessage wrong = await SendAsync(method, path, token: Token + "x");
        using HttpResponseMessage valid = await SendAsync(method, path, token: Token);

        missing.StatusCode.ShouldBe(HttpStatusCode.Unauthorized, "without a token");
        missing.Headers.WwwAuthenticate.ToString().ShouldBe("Bearer");
        missing.Content.Headers.Allow.ShouldBeEmpty("Allow without a token");
        wrong.StatusCode.ShouldBe(HttpStatusCode.Forbidden, "with a wrong token");
        wrong.Content.Headers.Allow.ShouldBeEmpty("Allow with a wrong token");
        ((int)valid.StatusCode).ShouldBe(statusWithToken, "with the token");
        string.Join(", ", valid.Content.Headers.Allow).ShouldBe(allow ?? "", "Allow with the token");
    }

    [Fact]
    public async Task ReplicaWithTokenDownloads()
    {
        var local = new ModelStore(Path.Combine(root, "replica"));
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);

        ModelVersion installed = await new VersionDownloader(http, local, null).InstallAsync(Announce(1), CancellationToken.None);

        installed.Number.ShouldBe(1);
    }

    [Fact]
    public async Task ReplicaWithoutTokenNamesSetting()
    {
        var local = new ModelStore(Path.Combine(root, "replica"));

        HttpRequestException exception = await Should.ThrowAsync<HttpRequestException>(
            new VersionDownloader(http, local, null).InstallAsync(Announce(1), CancellationToken.None));

        exception.StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        exception.Message.ShouldContain("Distribution:StoreTokenFile");
        exception.Message.ShouldContain(DistributionOptions.DefaultStoreTokenVariable);
        local.ListVersionNumbers().ShouldBeEmpty();
        Directory.GetDirectories(local.RootDirectory, ".download-*").ShouldBeEmpty();
    }

    [Theory]
    [InlineData("short", "has 5 characters; use at least 16")]
    [InlineData(null, "cannot be read")]
    [InlineData("", "is empty")]
    [InlineData("  \n\t\n", "is empty")]
    [InlineData("store-token-with-\u00fcmlaut-0123", "outside printable ASCII")]
    [InlineData("first-line-0123456789\nsecond-line-0123456789", "outside printable ASCII")]
    [InlineData("store-token-with-tab\t0123456789", "outside printable ASCII")]
    public void UnusableTokenFileFailsValidation(string? content, string expected)
    {
        string tokenFile = Path.Combine(root, "unusable-token");
        if (content is not null)
        {
            File.WriteAllText(tokenFile, content);
        }

        ValidateOptionsResult result = new DistributionOptionsValidator().Validate(null, new DistributionOptions { StoreTokenFile = tokenFile });

        result.Failed.ShouldBeTrue("a token file that is set must hold a token that replicas can send");
        result.FailureMessage.ShouldContain("Distribution:StoreTokenFile");
        result.FailureMessage.ShouldContain(expected);
        if (!string.IsNullOrWhiteSpace(content))
        {
            result.FailureMessage.ShouldNotContain(content.Trim());
        }
    }

    [Fact]
    public void PrintableAsciiTokenPassesValidation()
    {
        string tokenFile = Path.Combine(root, "printable-token");
        File.WriteAllText(tokenFile, "\uFEFF token with spaces ~!@#$%^&*()_+=-`[]{};':\",./<>?\r\n");

        ValidateOptionsResult result = new DistributionOptionsValidator().Validate(null, new DistributionOptions { StoreTokenFile = tokenFile });

        result.Succeeded.ShouldBeTrue(result.FailureMessage);
    }

    [Fact]
    public async Task TooLongTokenFailsValidation()
    {
        // Kestrel rejects a request whose headers exceed 32 KiB with 431 before any endpoint runs, so a replica
        // could never send this token.
        string token = new('t', 40_000);
        using (var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(storeUrl), "store/v1/versions")))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using HttpResponseMessage response = await http.SendAsync(request);
            response.StatusCode.ShouldBe(HttpStatusCode.RequestHeaderFieldsTooLarge);
        }

        string tokenFile = Path.Combine(root, "long-token");
        File.WriteAllText(tokenFile, token + "\n");
        ValidateOptionsResult result = new DistributionOptionsValidator().Validate(null, new DistributionOptions { StoreTokenFile = tokenFile });

        result.Failed.ShouldBeTrue("a token that no replica can send must stop the start");
        result.FailureMessage.ShouldContain("Distribution:StoreTokenFile");
        result.FailureMessage.ShouldContain("has 40000 characters; use at most 4096");
        result.FailureMessage.ShouldNotContain(token);
    }

    [Fact]
    public async Task LongestTokenDownloads()
    {
        string token = new('t', 4096);
        string tokenFile = Path.Combine(root, "longest-token");
        File.WriteAllText(tokenFile, token + "\n");
        var (longTokenLearner, longTokenUrl) = await StoreServer.StartAsync(source, tokenFile);
        await using (longTokenLearner)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(longTokenUrl), "store/v1/versions"));
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using HttpResponseMessage response = await http.SendAsync(request);
            response.StatusCode.ShouldBe(HttpStatusCode.OK);
        }
    }

    private async Task<HttpResponseMessage> SendAsync(string method, string path, string? token)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(new Uri(storeUrl), path));
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return await http.SendAsync(request);
    }

    private ModelVersionAnnouncement Announce(long number)
    {
        source.TryLoad(number, out ModelVersion? version).ShouldBeTrue();
        return ModelVersionAnnouncement.From(version!, storeUrl);
    }
}
