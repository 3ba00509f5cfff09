using Xunit;
using Xunit.Abstractions;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>
/// Tests that run child processes of the built executable in a temporary root directory. After each test, every
/// process in <see cref="Processes"/> writes its output to the test log and is stopped, and the directory is deleted.
/// </summary>
public abstract class ChildProcessTests(ITestOutputHelper testOutput) : IAsyncLifetime
{
    /// <summary>How long a process may take to start and listen.</summary>
    protected static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(40);

    /// <summary>The test's directory, for stores, token files and the processes' working directories.</summary>
    protected string Root { get; } = Directory.CreateDirectory(
        Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"))).FullName;

    /// <summary>The processes to log and stop after the test.</summary>
    private protected List<ContinualServeProcess> Processes { get; } = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (ContinualServeProcess process in Processes)
        {
            testOutput.WriteLine($"--- {process.Name} (exited: {process.HasExited})");
            testOutput.WriteLine(process.OutputTail);
            await process.DisposeAsync();
        }

        Directory.Delete(Root, recursive: true);
    }
}
