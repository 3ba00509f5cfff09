using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>
/// A <c>continualserve</c> child process started from the build output, with its console output kept
/// for failure messages. Disposing kills the process tree.
/// </summary>
internal sealed class ContinualServeProcess : IAsyncDisposable
{
    // The line that Microsoft.Hosting.Lifetime writes for each address Kestrel listens on.
    private const string ListeningMarker = "Now listening on: ";
    private const string BindFailureMarker = "Failed to bind";
    private const int MaxStartAttempts = 3;
    private static readonly TimeSpan ListenTimeout = TimeSpan.FromSeconds(60);

    private readonly Process process;
    private readonly ConcurrentQueue<string> output = new();
    private readonly ConcurrentQueue<string> listeningAddresses = new();

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

    /// <summary>
    /// Starts a child on port 0 of 127.0.0.1, so that the kernel picks a free port, and waits until it listens.
    /// <paramref name="arguments"/> builds the command line from the listen URL. Returns the child and the URL with the
    /// port it reported.
    /// </summary>
    public static async Task<(ContinualServeProcess Process, string Url)> StartOnAnyPortAsync(
        string name, string workingDirectory, string scheme, Func<string, string[]> arguments)
    {
        ContinualServeProcess child = Start(name, workingDirectory, arguments($"{scheme}://127.0.0.1:0"));
        string? url = await child.WaitUntilListeningAsync(scheme + "://127.0.0.1:");
        if (url is null)
        {
            string tail = child.OutputTail;
            await child.DisposeAsync();
            throw new InvalidOperationException($"{name} exited before it listened: {tail}");
        }

        return (child, url);
    }

    /// <summary>
    /// Starts a child whose command line needs its listen URL before it starts, such as a learner that announces that
    /// URL as its store URL, and waits until it listens. The port was free a moment before the start, but another socket
    /// can take it in between. A child that then fails to bind is started again on a fresh port, at most three times in all.
    /// A child that exits for another reason is returned as it is, for the test to report.
    /// </summary>
    public static async Task<(ContinualServeProcess Process, string Url)> StartOnFreePortAsync(
        string name, string workingDirectory, string scheme, Func<string, string[]> arguments)
    {
        for (int attempt = 1; ; attempt++)
        {
            string url = $"{scheme}://127.0.0.1:{FreePort().ToString(CultureInfo.InvariantCulture)}";
            ContinualServeProcess child = Start(name, workingDirectory, arguments(url));
            string? listening = await child.WaitUntilListeningAsync(url);
            bool bindFailed = listening is null && child.OutputTail.Contains(BindFailureMarker, StringComparison.Ordinal);
            if (!bindFailed || attempt == MaxStartAttempts)
            {
                return (child, url);
            }

            await child.DisposeAsync();
        }
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

    // Waits until the child reports an address that starts with addressPrefix and returns it, or returns null when the
    // child exits first.
    private async Task<string?> WaitUntilListeningAsync(string addressPrefix)
    {
        var waiting = Stopwatch.StartNew();
        while (waiting.Elapsed < ListenTimeout)
        {
            string? address = listeningAddresses.FirstOrDefault(candidate => candidate.StartsWith(addressPrefix, StringComparison.Ordinal));
            if (address is not null)
            {
                return address;
            }

            if (process.HasExited)
            {
                // With redirected output, WaitForExitAsync also waits until the last lines were read.
                await process.WaitForExitAsync();
                return null;
            }

            await Task.Delay(100);
        }

        string tail = OutputTail;
        await DisposeAsync();
        throw new TimeoutException($"{Name} did not listen on an address starting with {addressPrefix} within {ListenTimeout.TotalSeconds} s: {tail}");
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        int marker = line.IndexOf(ListeningMarker, StringComparison.Ordinal);
        if (marker >= 0)
        {
            listeningAddresses.Enqueue(line[(marker + ListeningMarker.Length)..].Trim());
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
