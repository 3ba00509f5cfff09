using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace ContinualServe.ObservabilityTests;

/// <summary>
/// The Debian prometheus binary, started on 127.0.0.1 with a free port, a temporary data directory and a
/// config that scrapes one target every second and evaluates the given rules files every second.
/// Disposing kills the process it started (by its id) and deletes the directory.
/// </summary>
public sealed class PrometheusServer : IDisposable
{
    public const string Binary = "/usr/bin/prometheus";
    private readonly Process process;
    private readonly string directory;
    private readonly StringWriter output = new();

    private PrometheusServer(Process process, string directory, Uri address)
    {
        this.process = process;
        this.directory = directory;
        Address = address;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(10) };
    }

    public Uri Address { get; }

    public HttpClient Client { get; }

    public string Output
    {
        get
        {
            lock (output)
            {
                return output.ToString();
            }
        }
    }

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
        int port = FreePort();
        var start = new ProcessStartInfo(Binary)
        {
            ArgumentList =
            {
                "--config.file=" + configPath,
                "--storage.tsdb.path=" + Path.Combine(directory, "data"),
                "--web.listen-address=127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture),
                "--log.level=warn",
            },
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        var process = Process.Start(start) ?? throw new InvalidOperationException("prometheus did not start.");
        var server = new PrometheusServer(process, directory, new Uri($"http://127.0.0.1:{port}/"));
        process.ErrorDataReceived += (_, line) => server.Append(line.Data);
        process.OutputDataReceived += (_, line) => server.Append(line.Data);
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
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
        if (!process.HasExited)
        {
            process.Kill();
            process.WaitForExit(10_000);
        }

        process.Dispose();
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

    private async Task WaitUntilReadyAsync(CancellationToken cancellation)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
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

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (output)
            {
                output.WriteLine(line);
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
