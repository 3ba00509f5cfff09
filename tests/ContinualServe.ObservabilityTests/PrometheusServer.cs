using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace ContinualServe.ObservabilityTests;

/// <summary>
/// The Debian prometheus binary, started on port 0 of 127.0.0.1 with a temporary data directory and a
/// config that scrapes one target every second and evaluates the given rules files every second.
/// Disposing kills the process it started (by its id) and deletes the directory.
/// </summary>
public sealed partial class PrometheusServer : IDisposable
{
    public const string Binary = "/usr/bin/prometheus";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private readonly Process process;
    private readonly string directory;
    private readonly StringWriter output;

    private PrometheusServer(Process process, string directory, StringWriter output, Uri address)
    {
        this.process = process;
        this.directory = directory;
        this.output = output;
        Address = address;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(10) };
    }

    public Uri Address { get; }

    public HttpClient Client { get; }

    public string Output => Read(output);

    public static async Task<PrometheusServer> StartAsync(string scrapeTarget, IEnumerable<string> ruleFiles, CancellationToken cancellation)
    {
        string directory = Path.Combine(Path.GetTempPath(), "continualserve-prometheus-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        string rules = string.Join("\n", ruleFiles.Select(file => "  - " + file));
        string config = $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 900ms
              evaluation_interval: 1s
            rule_files:
            {rules}
            scrape_configs:
              - job_name: continualserve
                static_configs:
                  - targets: ["{scrapeTarget}"]
            """;
        string configPath = Path.Combine(directory, "prometheus.yml");
        await File.WriteAllTextAsync(configPath, config, cancellation);
        var start = new ProcessStartInfo(Binary)
        {
            ArgumentList =
            {
                "--config.file=" + configPath,
                "--storage.tsdb.path=" + Path.Combine(directory, "data"),
                // Port 0 lets the kernel pick a free port, which the info-level "Listening on" line reports.
                "--web.listen-address=127.0.0.1:0",
                "--log.level=info",
            },
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        var output = new StringWriter();
        var process = Process.Start(start) ?? throw new InvalidOperationException("prometheus did not start.");
        process.ErrorDataReceived += (_, line) => Append(output, line.Data);
        process.OutputDataReceived += (_, line) => Append(output, line.Data);
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        int port;
        try
        {
            port = await WaitForPortAsync(process, output, cancellation);
        }
        catch
        {
            Stop(process);
            throw;
        }

        var server = new PrometheusServer(process, directory, output, new Uri($"http://127.0.0.1:{port}/"));
        await server.WaitUntilReadyAsync(cancellation);
        return server;
    }

    /// <summary>Runs an instant query and returns the "data" element; throws when Prometheus reports an error.</summary>
    public async Task<JsonElement> QueryAsync(string expression, CancellationToken cancellation)
    {
        using var content = new FormUrlEncodedContent([new("query", expression)]);
        return await PostAsync("api/v1/query", content, cancellation);
    }

    public async Task<JsonElement> QueryRangeAsync(string expression, DateTimeOffset start, DateTimeOffset end, CancellationToken cancellation)
    {
        using var content = new FormUrlEncodedContent(
        [
            new("query", expression),
            new("start", start.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)),
            new("end", end.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)),
            new("step", "1"),
        ]);
        return await PostAsync("api/v1/query_range", content, cancellation);
    }

    public async Task<JsonElement> GetAsync(string path, CancellationToken cancellation)
    {
        using HttpResponseMessage response = await Client.GetAsync(path, cancellation);
        return await ReadDataAsync(response, path, cancellation);
    }

    public void Dispose()
    {
        Client.Dispose();
        Stop(process);
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // The data directory may still be locked for a moment after the kill; it lives in the temp folder.
        }
    }

    private async Task<JsonElement> PostAsync(string path, HttpContent content, CancellationToken cancellation)
    {
        using HttpResponseMessage response = await Client.PostAsync(path, content, cancellation);
        return await ReadDataAsync(response, path, cancellation);
    }

    private static async Task<JsonElement> ReadDataAsync(HttpResponseMessage response, string path, CancellationToken cancellation)
    {
        string body = await response.Content.ReadAsStringAsync(cancellation);
        using JsonDocument document = JsonDocument.Parse(body);
        JsonElement root = document.RootElement;
        if (response.StatusCode != HttpStatusCode.OK || root.GetProperty("status").GetString() != "success")
        {
            throw new InvalidOperationException($"Prometheus answered {(int)response.StatusCode} to {path}: {body}");
        }

        return root.GetProperty("data").Clone();
    }

    private static void Stop(Process process)
    {
        if (!process.HasExited)
        {
            process.Kill();
            process.WaitForExit(10_000);
        }

        process.Dispose();
    }

    // Waits for the line in which Prometheus (2.42, through its exporter-toolkit) reports the address it listens on.
    private static async Task<int> WaitForPortAsync(Process process, StringWriter output, CancellationToken cancellation)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < StartTimeout)
        {
            Match listening = ListeningLine().Match(Read(output));
            if (listening.Success)
            {
                return int.Parse(listening.Groups[1].Value, CultureInfo.InvariantCulture);
            }

            if (process.HasExited)
            {
                throw new InvalidOperationException($"prometheus exited with {process.ExitCode}: {Read(output)}");
            }

            await Task.Delay(100, cancellation);
        }

        throw new TimeoutException($"prometheus did not report its listen address within {StartTimeout.TotalSeconds} s: {Read(output)}");
    }

    private async Task WaitUntilReadyAsync(CancellationToken cancellation)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < StartTimeout)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"prometheus exited with {process.ExitCode}: {Output}");
            }

            try
            {
                using HttpResponseMessage response = await Client.GetAsync("-/ready", cancellation);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(100, cancellation);
        }

        throw new TimeoutException($"prometheus was not ready within 30 s: {Output}");
    }

    private static void Append(StringWriter output, string? line)
    {
        if (line is not null)
        {
            lock (output)
            {
                output.WriteLine(line);
            }
        }
    }

    private static string Read(StringWriter output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    [GeneratedRegex(@"msg=""Listening on"" address=127\.0\.0\.1:(\d+)")]
    private static partial Regex ListeningLine();
}
