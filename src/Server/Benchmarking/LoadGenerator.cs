using System.Diagnostics;
using System.Net.Http.Headers;

namespace ContinualServe.Server.Benchmarking;

/// <summary>
/// A bounded HTTP load: a fixed number of clients each send the same request body back to back until the
/// duration ends or the request limit is reached. Only loopback addresses are accepted as targets.
/// </summary>
public sealed class LoadGenerator
{
    private readonly Uri target;
    private readonly byte[] body;
    private readonly string contentType;
    private readonly IReadOnlyDictionary<string, string> headers;

    public LoadGenerator(Uri target, byte[] body, string contentType, IReadOnlyDictionary<string, string>? headers = null)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (!target.IsLoopback)
        {
            throw new ArgumentException($"The load target {target} is not a loopback address; only loopback addresses (127.0.0.0/8, ::1 or localhost) may be loaded.", nameof(target));
        }

        this.target = target;
        this.body = body;
        this.contentType = contentType;
        this.headers = headers ?? new Dictionary<string, string>();
    }

    public async Task<LoadResult> RunAsync(int clients, TimeSpan duration, long maxRequests, CancellationToken cancellation)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(clients, 1);
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = clients, PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        stop.CancelAfter(duration);
        var latencies = new List<double>[clients];
        long issued = 0;
        long failed = 0;
        string? firstFailure = null;
        TimeSpan cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        long started = Stopwatch.GetTimestamp();

        Task[] workers = Enumerable.Range(0, clients).Select(client => Task.Run(async () =>
        {
            var own = new List<double>(4096);
            latencies[client] = own;
            while (!stop.IsCancellationRequested && Interlocked.Increment(ref issued) <= maxRequests)
            {
                long sent = Stopwatch.GetTimestamp();
                string? failure = await SendAsync(http).ConfigureAwait(false);
                if (failure is null)
                {
                    own.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                }
                else
                {
                    Interlocked.Increment(ref failed);
                    Interlocked.CompareExchange(ref firstFailure, failure, null);
                }
            }
        }, CancellationToken.None)).ToArray();
        await Task.WhenAll(workers).ConfigureAwait(false);

        TimeSpan elapsed = Stopwatch.GetElapsedTime(started);
        TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
        double[] all = latencies.SelectMany(list => list).Order().ToArray();
        return new LoadResult(all.Length, failed, elapsed.TotalSeconds, cpu.TotalSeconds, Percentile(all, 0.50), Percentile(all, 0.99))
        {
            FirstFailure = firstFailure,
        };
    }

    // Returns null for a success, else why the request failed: the status code and the start of the body, or the error.
    private async Task<string?> SendAsync(HttpClient http)
    {
        try
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
            foreach ((string name, string value) in headers)
            {
                content.Headers.TryAddWithoutValidation(name, value);
            }

            using HttpResponseMessage response = await http.PostAsync(target, content, CancellationToken.None).ConfigureAwait(false);
            await response.Content.LoadIntoBufferAsync(CancellationToken.None).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                return null;
            }

            string responseBody = await response.Content.ReadAsStringAsync(CancellationToken.None).ConfigureAwait(false);
            return $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}: {responseBody[..Math.Min(responseBody.Length, 200)]}";
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException)
        {
            return $"{exception.GetType().Name}: {exception.Message}";
        }
    }

    private static double Percentile(double[] sorted, double quantile) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(quantile * sorted.Length) - 1)];
}

/// <summary>Outcome of a load run; latencies in milliseconds, times in seconds.</summary>
/// <remarks>The latency percentiles are NaN when no request succeeded.</remarks>
public sealed record LoadResult(long Succeeded, long Failed, double ElapsedSeconds, double ClientCpuSeconds, double P50Milliseconds, double P99Milliseconds)
{
    public double RequestsPerSecond => Succeeded / ElapsedSeconds;

    /// <summary>Why the first failed request failed: its status code and the start of its body, or the error; null without failures.</summary>
    public string? FirstFailure { get; init; }
}
