using ContinualServe.Learner.Promotion;
using ContinualServe.Server.Demo;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Spectre.Console;
using Xunit;

namespace ContinualServe.IntegrationTests.Reliability;

/// <summary>
/// A demo whose learner fails mid-run. A regular file takes the place of the learner's checkpoint directory once the
/// first checkpoint is written, so the next round's checkpoint write fails as on a full or read-only volume.
/// </summary>
public sealed class DemoLearnerFailureTests
{
    [Fact(Timeout = 180_000)]
    public async Task LearnerFailureEndsDemo()
    {
        string runs = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
        var options = new DemoOptions
        {
            DataDirectory = Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist"),
            Urls = "http://127.0.0.1:0",
            RunsDirectory = runs,
            Device = "cpu",
            Tasks = 2,
            Clients = 1,
            RoundExamples = 200,
            MaxLag = 300,

            // A demo that waits for records after its learner failed ends only here, which the elapsed-time check catches.
            Timeout = TimeSpan.FromSeconds(100),
            Promotion = new PromotionOptions { Enabled = false },
        };
        var output = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        using var stopBreaking = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Task<bool> breaking = BreakCheckpointDirectoryAsync(runs, stopBreaking.Token);
        try
        {
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            DemoLearnerFailedException failure = await Should.ThrowAsync<DemoLearnerFailedException>(
                () => new DemoRunner(options, console, NullLoggerFactory.Instance).RunAsync(CancellationToken.None));

            (await breaking).ShouldBeTrue("the test did not find the learner's first checkpoint to replace");
            failure.InnerException.ShouldNotBeNull();
            failure.Message.ShouldStartWith("The demo stopped because its learner failed: ");
            System.Diagnostics.Stopwatch.GetElapsedTime(started).ShouldBeLessThan(options.Timeout);
        }
        finally
        {
            await stopBreaking.CancelAsync();

            // A demo that fails before its server listens removes the runs directory it created.
            if (Directory.Exists(runs))
            {
                Directory.Delete(runs, recursive: true);
            }
        }
    }

    /// <summary>
    /// Waits for a run's first learner checkpoint, then replaces the checkpoint directory with a file. Returns false when
    /// none appeared before <paramref name="cancellation"/>.
    /// </summary>
    private static async Task<bool> BreakCheckpointDirectoryAsync(string runs, CancellationToken cancellation)
    {
        while (!cancellation.IsCancellationRequested)
        {
            string? checkpoints = Directory.Exists(runs)
                ? Directory.GetDirectories(runs)
                    .Select(run => Path.Combine(run, "models", "learner-checkpoint"))
                    .FirstOrDefault(directory => Directory.Exists(directory) && Directory.GetDirectories(directory, "c*").Length > 0)
                : null;
            if (checkpoints is not null)
            {
                Directory.Delete(checkpoints, recursive: true);
                await File.WriteAllTextAsync(checkpoints, "a file where the checkpoint directory was", CancellationToken.None);
                return true;
            }

            try
            {
                await Task.Delay(50, cancellation);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }

        return false;
    }
}
