using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ContinualServe.Server.Benchmarking;

namespace ContinualServe.Benchmarks;

/// <summary>
/// Runs `continualserve bench` as a separate process, so the load client's CPU time is measured apart from
/// the servers', and returns its result together with the server process's CPU time over the same run.
/// </summary>
internal sealed class LoadClient(string continualServeDll, TimeSpan duration)
{
    /// <summary>Length of each measured load window.</summary>
    public TimeSpan Duration => duration;

    public async Task<(LoadResult Load, double ServerCpuSeconds)> RunAsync(
        Uri target, byte[] body, int clients, string contentType = "application/json", int? headerLength = null, bool warmUp = false)
    {
        string bodyPath = Path.GetTempFileName();
        await File.WriteAllBytesAsync(bodyPath, body).ConfigureAwait(false);
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in new[]
        {
            continualServeDll, "bench", "--url", target.ToString(), "--body", bodyPath, "--content-type", contentType,
            "--clients", clients.ToString(CultureInfo.InvariantCulture),
            "--seconds", (warmUp ? 2.0 : duration.TotalSeconds).ToString(CultureInfo.InvariantCulture), "--json",
        })
        {
            start.ArgumentList.Add(argument);
        }

        if (headerLength is int length)
        {
            start.ArgumentList.Add("--inference-header-length");
            start.ArgumentList.Add(length.ToString(CultureInfo.InvariantCulture));
        }

        TimeSpan serverCpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        using Process process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the load client.");
        string output = await process.StandardOutput.ReadToEndAsync().ConfigureAwait(false);
        string errors = await process.StandardError.ReadToEndAsync().ConfigureAwait(false);
        await process.WaitForExitAsync().ConfigureAwait(false);
        double serverCpu = (Process.GetCurrentProcess().TotalProcessorTime - serverCpuBefore).TotalSeconds;
        File.Delete(bodyPath);
        string line = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault(text => text.StartsWith('{'))
            ?? throw new InvalidOperationException($"The load client printed no result (exit code {process.ExitCode}): {output} {errors}");
        return (JsonSerializer.Deserialize<LoadResult>(line)!, serverCpu);
    }
}
