using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>
/// A <c>continualserve</c> child process started from the build output, with its console output kept
/// for failure messages. Disposing kills the process tree.
/// </summary>
internal sealed class ContinualServeProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly ConcurrentQueue<string> output = new();

    private ContinualServeProcess(string name, Process process)
    {
        Name = name;
        this.process = process;
    }

    public string Name { get; }

    public bool HasExited => process.HasExited;

    public int Id => process.Id;

    /// <summary>Waits for the process to exit and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(deadline.Token);
        return process.ExitCode;
    }

    /// <summary>The last lines the process wrote to stdout and stderr.</summary>
    public string OutputTail => string.Join(Environment.NewLine, output.TakeLast(60));

    public static ContinualServeProcess Start(string name, string workingDirectory, params string[] arguments)
    {
        var startInfo = new ProcessStartInfo(DotnetHost())
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add(ServerAssembly());
        foreach (string argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        // Keep the test's own environment (for example ASPNETCORE_URLS) from changing the child's settings.
        startInfo.Environment.Remove("ASPNETCORE_URLS");
        startInfo.Environment.Remove("ASPNETCORE_HTTP_PORTS");
        startInfo.Environment["DOTNET_ENVIRONMENT"] = "Test";
        var process = new Process { StartInfo = startInfo };
        var child = new ContinualServeProcess(name, process);
        process.OutputDataReceived += (_, line) => child.Append(line.Data);
        process.ErrorDataReceived += (_, line) => child.Append(line.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Returns a TCP port on 127.0.0.1 that was free a moment ago.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            await process.WaitForExitAsync(timeout.Token);
        }

        process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        output.Enqueue(line);
        while (output.Count > 500)
        {
            output.TryDequeue(out _);
        }
    }

    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    /// <summary>
    /// Finds continualserve.dll: beside the tests when the SDK copied its runtime configuration there, otherwise in
    /// the server project's output for the same configuration (tests/X/bin/Release/net10.0/linux-x64 maps to src/Server/bin/...).
    /// </summary>
    private static string ServerAssembly()
    {
        string beside = Path.Combine(AppContext.BaseDirectory, "continualserve.dll");
        if (File.Exists(Path.Combine(AppContext.BaseDirectory, "continualserve.runtimeconfig.json")))
        {
            return beside;
        }

        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string runtime = output.Name;
        string framework = output.Parent!.Name;
        string configuration = output.Parent.Parent!.Name;
        string repository = output.Parent.Parent.Parent!.Parent!.Parent!.Parent!.FullName;
        string built = Path.Combine(repository, "src", "Server", "bin", configuration, framework, runtime, "continualserve.dll");
        return File.Exists(built)
            ? built
            : throw new FileNotFoundException($"continualserve.dll was not found beside the tests or at {built}; build src/Server first.");
    }
}
