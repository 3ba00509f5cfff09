using System.Text.Json;
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
        version.ShouldBe(pipeline.FinalVersion);
        expectedCells.ShouldBe(3);

        using IPlaywright playwright = await Playwright.CreateAsync();
        await using IBrowser browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
            Timeout = 60_000,
        });
        IPage page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 1100 } });
        var errors = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                errors.Add(message.Text);
            }
        };
        page.PageError += (_, error) => errors.Add(error);
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
        string screenshot = Path.Combine(RepositoryPaths.ArtifactsDirectory, "status-page.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
        new FileInfo(screenshot).Length.ShouldBeGreaterThan(10_000);
        errors.ShouldBeEmpty();
        requestedHosts.Distinct().ShouldBe([pipeline.ServerAddress.Authority]);
    }
}
