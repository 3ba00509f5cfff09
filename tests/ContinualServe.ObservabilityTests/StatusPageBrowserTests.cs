using System.Text.Json;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Shouldly;
using Xunit;

namespace ContinualServe.ObservabilityTests;

/// <summary>
/// The status page of the observed run in real headless Chromium. Playwright drives the Debian chromium
/// executable because it cannot download its own browsers on these machines.
/// </summary>
[Collection(ObservedPipelineGroup.Name)]
public sealed class StatusPageBrowserTests(ObservedPipeline pipeline)
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task StatusPageShowsVersionAndHeatmap()
    {
        using JsonDocument status = JsonDocument.Parse(await pipeline.ServerClient.GetStringAsync("ui/api/status"));
        long version = status.RootElement.GetProperty("version").GetInt64();
        int expectedCells = status.RootElement.GetProperty("evaluation").GetProperty("accuracyMatrix").EnumerateArray().Sum(row => row.GetArrayLength());
        JsonElement learner = status.RootElement.GetProperty("learner");
        long trained = learner.GetProperty("trained").GetInt64();
        version.ShouldBe(pipeline.FinalVersion);
        expectedCells.ShouldBe(3);
        learner.GetProperty("state").GetString().ShouldBe("running");
        learner.GetProperty("latestVersion").GetInt64().ShouldBe(pipeline.FinalVersion);
        trained.ShouldBeGreaterThan(0);

        using IPlaywright playwright = await Playwright.CreateAsync();
        await using IBrowser browser = await LaunchAsync(playwright);
        IPage page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 1300 } });
        List<string> errors = CollectErrors(page);
        var requestedHosts = new List<string>();
        page.Request += (_, request) => requestedHosts.Add(new Uri(request.Url).Authority);

        await page.GotoAsync(new Uri(pipeline.ServerAddress, "ui").ToString(), new PageGotoOptions { Timeout = 30_000 });
        await page.WaitForFunctionAsync("expected => document.body.dataset.loadedVersion === expected", version.ToString(System.Globalization.CultureInfo.InvariantCulture), new PageWaitForFunctionOptions { Timeout = 15_000 });
        // Two traffic samples draw the rate and latency lines.
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#latency-chart polyline').length > 0", null, new PageWaitForFunctionOptions { Timeout = 15_000 });

        (await page.TextContentAsync("#version")).ShouldBe(version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var cells = await page.Locator("#heatmap td.cell").AllAsync();
        cells.Count.ShouldBe(expectedCells);
        var cellKeys = new List<string>();
        foreach (ILocator cell in cells)
        {
            cellKeys.Add(await cell.GetAttributeAsync("data-after-task") + "/" + await cell.GetAttributeAsync("data-task"));
        }

        cellKeys.ShouldBe(["1/1", "2/1", "2/2"]);
        (await page.Locator("#forgetting .bar-row").CountAsync()).ShouldBe(2);
        (await page.Locator("#accuracy-chart polyline").CountAsync()).ShouldBeGreaterThanOrEqualTo(2);
        (await page.Locator("#rate-chart polyline").CountAsync()).ShouldBeGreaterThan(0);
        (await page.GetAttributeAsync("body", "data-learner-state")).ShouldBe("running");
        (await page.TextContentAsync("#learner-state")).ShouldBe("running, ready");
        (await page.TextContentAsync("#learner-task")).ShouldBe("2");
        (await page.TextContentAsync("#learner-trained")).ShouldBe(trained.ToString(System.Globalization.CultureInfo.InvariantCulture));
        (await page.TextContentAsync("#learner-version")).ShouldBe(version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        (await page.IsVisibleAsync("#learner")).ShouldBeTrue();
        (await page.IsVisibleAsync("#learner-none")).ShouldBeFalse();
        string screenshot = Path.Combine(RepositoryPaths.ArtifactsDirectory, "status-page.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
        new FileInfo(screenshot).Length.ShouldBeGreaterThan(10_000);
        errors.ShouldBeEmpty();
        requestedHosts.Distinct().ShouldBe([pipeline.ServerAddress.Authority]);
    }

    // A serve process on an empty store: no version and no learner.
    [Fact]
    public async Task StatusPageSaysNoLearner()
    {
        string store = Directory.CreateTempSubdirectory("continualserve-status-page-").FullName;
        await using WebApplication server = ServerHost.Build(["--Logging:LogLevel:Default=Warning"], "http://127.0.0.1:0", options =>
        {
            options.StoreDirectory = store;
            options.Device = "cpu";
        }, pollStore: false);
        await server.StartAsync();
        string address = server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

        using IPlaywright playwright = await Playwright.CreateAsync();
        await using IBrowser browser = await LaunchAsync(playwright);
        IPage page = await browser.NewPageAsync();
        List<string> errors = CollectErrors(page);
        await page.GotoAsync(address + "/ui/", new PageGotoOptions { Timeout = 30_000 });
        await page.WaitForFunctionAsync("() => document.body.dataset.learnerState === 'none'", null, new PageWaitForFunctionOptions { Timeout = 15_000 });

        (await page.IsVisibleAsync("#learner-none")).ShouldBeTrue();
        (await page.TextContentAsync("#learner-none")).ShouldNotBeNull().ShouldStartWith("No learner in this process");
        (await page.IsVisibleAsync("#learner")).ShouldBeFalse();
        (await page.TextContentAsync("#version")).ShouldBe("none loaded");
        errors.ShouldBeEmpty();
        await server.StopAsync();
        Directory.Delete(store, recursive: true);
    }

    internal static Task<IBrowser> LaunchAsync(IPlaywright playwright) => playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
    {
        ExecutablePath = Chromium,
        Headless = true,
        Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
        Timeout = 60_000,
    });

    // Console errors and uncaught exceptions of the page.
    internal static List<string> CollectErrors(IPage page)
    {
        var errors = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                errors.Add(message.Text);
            }
        };
        page.PageError += (_, error) => errors.Add(error);
        return errors;
    }
}
