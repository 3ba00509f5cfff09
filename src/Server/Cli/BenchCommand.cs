using System.CommandLine;
using System.Net.Http.Headers;
using System.Text.Json;
using ContinualServe.Server.Benchmarking;

namespace ContinualServe.Server.Cli;

/// <summary><c>continualserve bench</c>: a bounded load generator against a server on this machine.</summary>
public static class BenchCommand
{
    // One day: a longer load is a soak, which bench/soak.py runs in bounded rounds.
    private const double MaxSeconds = 86_400;

    // 64 MiB: eight times the server's default request body limit (Server:MaxRequestBodyBytes), enough to measure 413
    // responses, while a file without end such as /dev/zero stops here instead of exhausting memory.
    internal const int MaxBodyBytes = 64 * 1024 * 1024;

    public static Command Create()
    {
        var url = new Option<string>("--url") { Description = "Inference URL on 127.0.0.1, e.g. http://127.0.0.1:8080/v2/models/fashion-mnist/infer.", Required = true };
        var bodyFile = new Option<FileInfo>("--body") { Description = "File with the request body to send.", Required = true };
        bodyFile.AcceptExistingOnly();
        var contentType = new Option<string>("--content-type") { Description = "Content-Type of the body.", DefaultValueFactory = _ => "application/json" };
        var headerLength = new Option<int?>("--inference-header-length") { Description = "Inference-Header-Content-Length for binary bodies (JSON header bytes)." };
        var clients = new Option<int>("--clients") { Description = "Concurrent clients.", DefaultValueFactory = _ => 8 };
        var seconds = new Option<double>("--seconds") { Description = "Duration of the load, in seconds.", DefaultValueFactory = _ => 10 };
        var maxRequests = new Option<long>("--max-requests") { Description = "Upper bound on requests sent.", DefaultValueFactory = _ => 1_000_000 };
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON line." };
        CommandLine.AddCheck(url, value => Uri.TryCreate(value, UriKind.Absolute, out Uri? parsed) && (parsed.Scheme == Uri.UriSchemeHttp || parsed.Scheme == Uri.UriSchemeHttps)
            ? null
            : $"--url must be an absolute http:// or https:// URL, but it is '{value}'.");
        CommandLine.AddCheck(bodyFile, file => Directory.Exists(file.FullName)
            ? $"--body: '{file}' is a directory. Give the file with the request body."
            : null);
        CommandLine.AddCheck(contentType, value => MediaTypeHeaderValue.TryParse(value, out _)
            ? null
            : $"--content-type: '{value}' is not a valid media type; use one such as application/json or application/octet-stream.");
        CommandLine.AddIntegerCheck(clients, count => count < 1 ? $"--clients must be 1 or more, but it is {count}." : null);
        CommandLine.AddCheck(seconds, value => double.IsFinite(value) && value > 0 && value <= MaxSeconds
            ? null
            : $"--seconds must be more than 0 and at most {MaxSeconds}, but it is {value.ToString(System.Globalization.CultureInfo.InvariantCulture)}.");
        CommandLine.AddCheck(maxRequests, count => count < 1 ? $"--max-requests must be 1 or more, but it is {count}." : null);
        var command = new Command("bench", "Send a bounded HTTP load to a local inference server and print throughput and latency.")
        {
            url, bodyFile, contentType, headerLength, clients, seconds, maxRequests, json,
        };
        command.SetAction(async (result, cancellation) =>
        {
            var headers = new Dictionary<string, string>();
            if (result.GetValue(headerLength) is int length)
            {
                headers["Inference-Header-Content-Length"] = length.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            FileInfo bodyPath = result.GetValue(bodyFile)!;
            byte[]? body = await ReadBodyAsync(bodyPath.FullName, cancellation).ConfigureAwait(false);
            if (body is null)
            {
                await Console.Error.WriteLineAsync(
                    $"--body: '{bodyPath}' is larger than {MaxBodyBytes} bytes (64 MiB), the largest body bench sends.").ConfigureAwait(false);
                return 2;
            }

            LoadGenerator generator;
            try
            {
                generator = new LoadGenerator(new Uri(result.GetValue(url)!), body, result.GetValue(contentType)!, headers);
            }
            catch (ArgumentException exception)
            {
                // The generator rejects targets off this machine, which is reported in one line instead of a stack trace.
                await Console.Error.WriteLineAsync(CommandLine.MessageWithoutParameter(exception)).ConfigureAwait(false);
                return 2;
            }

            LoadResult load = await generator.RunAsync(result.GetValue(clients), TimeSpan.FromSeconds(result.GetValue(seconds)), result.GetValue(maxRequests), cancellation).ConfigureAwait(false);
            Console.WriteLine(result.GetValue(json)
                ? JsonSerializer.Serialize(ToJson(load))
                : $"{load.Succeeded} ok, {load.Failed} failed in {load.ElapsedSeconds:F1} s: {load.RequestsPerSecond:F0} requests/s, p50 {Milliseconds(load.P50Milliseconds)}, p99 {Milliseconds(load.P99Milliseconds)}, client CPU {load.ClientCpuSeconds:F1} s");
            if (load.FirstFailure is not null)
            {
                await Console.Error.WriteLineAsync($"The first failed request: {load.FirstFailure}").ConfigureAwait(false);
            }

            return load.Failed == 0 ? 0 : 1;
        });
        return command;
    }

    // Returns the file's content, or null when it has more than MaxBodyBytes. The length is not taken from the file
    // system, because devices and pipes report 0.
    private static async Task<byte[]?> ReadBodyAsync(string path, CancellationToken cancellation)
    {
        await using FileStream file = File.OpenRead(path);
        using var body = new MemoryStream();
        byte[] buffer = new byte[81_920];
        while (body.Length <= MaxBodyBytes)
        {
            int read = await file.ReadAsync(buffer, cancellation).ConfigureAwait(false);
            if (read == 0)
            {
                return body.ToArray();
            }

            body.Write(buffer, 0, read);
        }

        return null;
    }

    // JSON has no NaN, so the latency percentiles of a run without a successful request are null.
    private static object ToJson(LoadResult load) => new
    {
        load.Succeeded,
        load.Failed,
        load.ElapsedSeconds,
        load.ClientCpuSeconds,
        P50Milliseconds = double.IsNaN(load.P50Milliseconds) ? (double?)null : load.P50Milliseconds,
        P99Milliseconds = double.IsNaN(load.P99Milliseconds) ? (double?)null : load.P99Milliseconds,
        load.RequestsPerSecond,
        load.FirstFailure,
    };

    private static string Milliseconds(double value) =>
        double.IsNaN(value) ? "n/a" : value.ToString("F2", System.Globalization.CultureInfo.InvariantCulture) + " ms";
}
