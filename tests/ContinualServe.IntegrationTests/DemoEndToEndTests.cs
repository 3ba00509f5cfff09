using ContinualServe.Learner.Promotion;
using ContinualServe.Server.Demo;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Spectre.Console;
using Xunit;

namespace ContinualServe.IntegrationTests;

/// <summary>
/// The demo pipeline on the committed slice: embedded broker, learner, server and inference clients
/// in one process, streaming the first two Split Fashion-MNIST tasks.
/// </summary>
public sealed class DemoEndToEndTests
{
    [Fact]
    public async Task TwoTasksStreamWithoutFailedRequests()
    {
        var options = new DemoOptions
        {
            DataDirectory = Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist"),
            Urls = "http://127.0.0.1:0",
            RunsDirectory = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N")),
            Device = "cpu",
            Tasks = 2,
            Clients = 4,
            RequestPause = TimeSpan.FromMilliseconds(2),
            RoundExamples = 200,
            MaxLag = 300,
            Timeout = TimeSpan.FromMinutes(3),

            // On this 1,205-example slice DER++ forgets task 1 well past the gate's default limits at every round of
            // task 2, so the gate would keep version after version out; the gate has its own learner tests.
            Promotion = new PromotionOptions { Enabled = false },
        };
        var output = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        console.Profile.Width = 300;

        DemoResult result = await new DemoRunner(options, console, NullLoggerFactory.Instance).RunAsync(CancellationToken.None);

        result.ExamplesProduced.ShouldBe(1205);
        result.ExamplesLost.ShouldBe(0);
        result.FinalVersion.ShouldBeGreaterThan(result.FirstVersion + 2);
        result.NewestServedVersion.ShouldBeGreaterThan(result.FirstVersion);
        result.RequestsSucceeded.ShouldBeGreaterThan(50);
        result.RequestsFailed.ShouldBe(0);
        result.Evaluation.Tasks.ShouldBe([1, 2]);
        // Chance over the four classes seen is 0.25; DER++ keeps task 1 well above that after task 2.
        result.Evaluation.AccuracyMatrix[1][0].ShouldBeGreaterThan(0.5);
        result.Evaluation.AccuracyMatrix[1][1].ShouldBeGreaterThan(0.7);
        output.ToString().ShouldContain("holdout accuracy");
    }
}
