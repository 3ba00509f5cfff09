using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using ContinualServe.Server.Hosting;
using ContinualServe.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Shouldly;
using Xunit;

namespace ContinualServe.ObservabilityTests;

/// <summary>
/// The status page's HTTPS certificate section in headless Chromium, for a serve process on an empty store with and
/// without a certificate file.
/// </summary>
public sealed class StatusPageCertificateTests : IDisposable
{
    private const string DefaultSetting = "Kestrel:Certificates:Default:Path";

    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-status-certificates-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    // 10.5 days left is inside the 14 days of the ContinualServeCertificateExpiresSoon alert.
    [Fact]
    public async Task PageShowsDaysLeftOfCertificate()
    {
        using X509Certificate2 certificate = TestCertificates.CreateSelfSigned(
            "status-page.example", DateTimeOffset.UtcNow.AddDays(-80), DateTimeOffset.UtcNow.AddDays(10.5));
        (string certificatePath, string keyPath) = TestCertificates.WritePemFiles(certificate, directory, "tls");
        await using WebApplication server = Build(
            "https://127.0.0.1:0", $"--Kestrel:Certificates:Default:Path={certificatePath}", $"--Kestrel:Certificates:Default:KeyPath={keyPath}");
        await server.StartAsync();
        string address = Address(server);
        string thumbprint = certificate.GetCertHashString(HashAlgorithmName.SHA256);

        using IPlaywright playwright = await Playwright.CreateAsync();
        await using IBrowser browser = await StatusPageBrowserTests.LaunchAsync(playwright);
        IPage page = await browser.NewPageAsync(new BrowserNewPageOptions { IgnoreHTTPSErrors = true });
        List<string> errors = StatusPageBrowserTests.CollectErrors(page);
        await page.GotoAsync(address + "/ui/", new PageGotoOptions { Timeout = 30_000 });

        // The monitor reads the files just after the start, so the first status may come before the first read.
        await page.WaitForSelectorAsync("#certificates dd", new PageWaitForSelectorOptions { Timeout = 15_000 });
        JsonElement listed = (await ReadStatusAsync(address, thumbprint)).GetProperty("certificates").EnumerateArray().ShouldHaveSingleItem();

        listed.GetProperty("setting").GetString().ShouldBe(DefaultSetting);
        listed.GetProperty("subject").GetString().ShouldBe("CN=status-page.example");
        listed.GetProperty("state").GetString().ShouldBe("expires_soon");
        listed.GetProperty("daysLeft").GetDouble().ShouldBeInRange(10.4, 10.5);
        (await page.IsVisibleAsync("#certificates-section")).ShouldBeTrue();
        (await page.TextContentAsync("#certificates dt")).ShouldBe(DefaultSetting);
        (await page.GetAttributeAsync("#certificates dd", "data-state")).ShouldBe("expires_soon");
        (await page.TextContentAsync("#certificates dd")).ShouldBe("10.5 days, renew soon");
        errors.ShouldBeEmpty();
        await server.StopAsync();
    }

    [Fact]
    public async Task PageHidesCertificatesWithoutHttps()
    {
        await using WebApplication server = Build("http://127.0.0.1:0");
        await server.StartAsync();
        string address = Address(server);

        using IPlaywright playwright = await Playwright.CreateAsync();
        await using IBrowser browser = await StatusPageBrowserTests.LaunchAsync(playwright);
        IPage page = await browser.NewPageAsync();
        List<string> errors = StatusPageBrowserTests.CollectErrors(page);
        await page.GotoAsync(address + "/ui/", new PageGotoOptions { Timeout = 30_000 });
        await page.WaitForFunctionAsync("() => document.body.dataset.learnerState === 'none'", null, new PageWaitForFunctionOptions { Timeout = 15_000 });

        (await ReadStatusAsync(address, thumbprint: null)).GetProperty("certificates").GetArrayLength().ShouldBe(0);
        (await page.IsVisibleAsync("#certificates-section")).ShouldBeFalse();
        (await page.Locator("#certificates dd").CountAsync()).ShouldBe(0);
        errors.ShouldBeEmpty();
        await server.StopAsync();
    }

    private WebApplication Build(string urls, params string[] arguments) =>
        ServerHost.Build(["--Logging:LogLevel:Default=Warning", .. arguments], urls, options =>
        {
            options.StoreDirectory = Path.Combine(directory, "store");
            options.Device = "cpu";
        }, pollStore: false);

    private static string Address(WebApplication server) =>
        server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    // Accepts only the test's own certificate, by its SHA-256 thumbprint, when the server listens on HTTPS.
    private static async Task<JsonElement> ReadStatusAsync(string address, string? thumbprint)
    {
        using var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, served, _, _) =>
                served is not null && served.GetCertHashString(HashAlgorithmName.SHA256) == thumbprint,
        };
        using var client = new HttpClient(handler) { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(10) };
        using JsonDocument status = JsonDocument.Parse(await client.GetStringAsync("ui/api/status"));
        return status.RootElement.Clone();
    }
}
