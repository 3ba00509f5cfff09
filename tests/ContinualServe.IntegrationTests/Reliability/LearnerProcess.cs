using System.Collections.Concurrent;
using System.Diagnostics;

namespace ContinualServe.IntegrationTests.Reliability;

/// <summary>A `continualserve learn` child process whose output lines are collected for the test to wait on.</summary>
internal sealed class LearnerProcess : IDisposable
{
    private readonly Process process;
    private readonly ConcurrentQueue<string> lines = new();

    private LearnerProcess(Process process)
    {
        this.process = process;
        process.OutputDataReceived += (_, line) => Collect(line.Data);
        process.ErrorDataReceived += (_, line) => Collect(line.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public bool HasExited => process.HasExited;

    public IReadOnlyCollection<string> Lines => lines;

    public static LearnerProcess Start(IEnumerable<string> arguments)
    {
        string executable = Path.Combine(AppContext.BaseDirectory, "continualserve.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(executable);
        start.ArgumentList.Add("learn");
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return new LearnerProcess(Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start."));
    }

    /// <summary>Waits until <paramref name="count"/> output lines contain <paramref name="text"/>; false on timeout or exit.</summary>
    public async Task<bool> WaitForLinesAsync(string text, int count, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (lines.Count(line => line.Contains(text, StringComparison.Ordinal)) >= count)
            {
                return true;
            }

            if (process.HasExited)
            {
                return false;
            }

            await Task.Delay(20);
        }

        return false;
    }

    /// <summary>Sends SIGKILL, as a crash or an OOM kill would, and waits for the process to end.</summary>
    public void KillHard()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: false);
        }

        process.WaitForExit(10_000);
    }

    public void Dispose()
    {
        KillHard();
        process.Dispose();
    }

    private void Collect(string? line)
    {
        if (line is not null)
        {
            lines.Enqueue(line);
        }
    }
}
