using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>
/// <c>experiment --output</c> paths that cannot be written. The check runs before the first strategy, so no case
/// trains a model.
/// </summary>
public sealed class ExperimentOutputTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-output-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public async Task PathUnderFileExitsWithTwo()
    {
        string file = Path.Combine(directory, "notes.txt");
        await File.WriteAllTextAsync(file, "a file, not a directory");

        (int exitCode, string standardOutput, string standardError) = await RunAsync(Path.Combine(file, "results.md"));

        exitCode.ShouldBe(2, standardError);
        standardError.ShouldStartWith("--output: failed to open ");
        standardOutput.ShouldNotContain("seed 1:");
    }

    [Fact]
    public async Task UncreatableDirectoryExitsWithTwo()
    {
        // No process, root included, can create a directory under /proc.
        (int exitCode, _, string standardError) = await RunAsync("/proc/continualserve-results/results.md");

        exitCode.ShouldBe(2, standardError);
        standardError.ShouldStartWith("--output: failed to open '/proc/continualserve-results/results.md'");
    }

    [Fact]
    public async Task EmptyPathExitsWithTwo()
    {
        (int exitCode, _, string standardError) = await RunAsync("");

        exitCode.ShouldBe(2, standardError);
        standardError.ShouldStartWith("--output is empty.");
    }

    [Fact]
    public async Task DirectoryPathExitsWithTwo()
    {
        (int exitCode, _, string standardError) = await RunAsync(directory);

        exitCode.ShouldBe(2, standardError);
        standardError.ShouldContain("is a directory");
    }

    private static Task<(int ExitCode, string StandardOutput, string StandardError)> RunAsync(string output) =>
        ContinualServeProcess.RunAsync(
            ["experiment", "--data", Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist"), "--strategies", "naive", "--seeds", "1", "--output", output]);
}
