using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

/// <summary>
/// Malformed and slow requests to the inference route: each gets a 4xx and is counted, and the server stays healthy.
/// </summary>
public sealed class MalformedBodyFuzzTests
{
    internal const int Features = 16;
    internal const int MaxBodyBytes = 64 * 1024;
    private const string InferPath = "v2/models/test-model/infer";

    [Fact]
    public async Task SlowHeadersTimeOut()
    {
        await using RunningServer server = await RunningServer.StartAsync(versions: 1, maxRequestBodyBytes: MaxBodyBytes, arguments: "--HttpLimits:RequestHeadersTimeout=00:00:01");
        using var client = new TcpClient();
        await client.ConnectAsync(server.Client.BaseAddress!.Host, server.Client.BaseAddress.Port);
        NetworkStream stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("POST /v2/models/test-model/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
        var started = DateTime.UtcNow;

        var buffer = new byte[1024];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        int read = await stream.ReadAsync(buffer, timeout.Token);
        string answer = Encoding.ASCII.GetString(buffer, 0, read);

        (read == 0 || answer.StartsWith("HTTP/1.1 408", StringComparison.Ordinal)).ShouldBeTrue($"answer: {answer}");
        (DateTime.UtcNow - started).ShouldBeLessThan(TimeSpan.FromSeconds(6));
    }

    [Theory]
    [InlineData("v2/models/test-model/infer")]
    [InlineData("v1/models/test-model:predict")]
    public async Task SlowBodyGets408NamingSettings(string path)
    {
        await using RunningServer server = await RunningServer.StartAsync(
            versions: 1,
            maxRequestBodyBytes: MaxBodyBytes,
            arguments: ["--HttpLimits:MinRequestBodyBytesPerSecond=4096", "--HttpLimits:MinBodyRateGracePeriod=00:00:02"]);
        using var client = new TcpClient();
        await client.ConnectAsync(server.Client.BaseAddress!.Host, server.Client.BaseAddress.Port);
        NetworkStream stream = client.GetStream();
        string head = $"POST /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));

        // One byte every 100 ms is far below 4,096 bytes per second, so the server gives up after the grace period.
        string answer = await SlowClient.TrickleUntilAnswerAsync(stream, TimeSpan.FromSeconds(10));

        answer.ShouldStartWith("HTTP/1.1 408");
        answer.ShouldContain("HttpLimits:MinRequestBodyBytesPerSecond");
        answer.ShouldContain("HttpLimits:MinBodyRateGracePeriod");
        answer.ShouldContain("\r\nConnection: close\r\n", Case.Insensitive, "Kestrel closes the connection after the 408");
    }

    [Fact]
    public async Task DisconnectWhileQueuedIsCountedAsAborted()
    {
        // A queue delay of 4 s keeps a lone request waiting for a fuller batch. Its client leaves after 1.5 s, when the
        // server has long read the whole body (a body cut short would count as bad_request instead).
        await using RunningServer server = await RunningServer.StartAsync(
            versions: 1, maxRequestBodyBytes: MaxBodyBytes, arguments: "--Batching:MaxQueueDelay=00:00:04");
        Prometheus.Counter.Child aborted = ContinualServeMetrics.InferenceRequests.WithLabels("test-model", "aborted");
        double before = aborted.Value;

        using (var client = new TcpClient())
        {
            await client.ConnectAsync(server.Client.BaseAddress!.Host, server.Client.BaseAddress.Port);
            NetworkStream stream = client.GetStream();
            byte[] body = Encoding.UTF8.GetBytes(InferenceRequests.Body(1, Features));
            string head = "POST /v2/models/test-model/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + $"Content-Length: {body.Length}\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
            await stream.WriteAsync(body);
            await stream.FlushAsync();
            await Task.Delay(1500);
        }

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (aborted.Value <= before && !deadline.IsCancellationRequested)
        {
            await Task.Delay(50, CancellationToken.None);
        }

        aborted.Value.ShouldBe(before + 1, "requests counted with outcome aborted");
        using HttpResponseMessage live = await server.Client.GetAsync("v2/health/live");
        live.StatusCode.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task ResetMidBodyIsCounted()
    {
        // A reset raises ConnectionResetException from the body read before Kestrel cancels RequestAborted. The request
        // must still be counted, and must not reach Kestrel as an unhandled exception, which it logs as an error with
        // the stack. Kestrel reports some resets as an unexpected end of the body instead, which counts as bad_request.
        const int Resets = 4;
        string[] paths = [InferPath, "v1/models/test-model:predict"];
        var logs = new RecordingLoggerProvider(LogLevel.Error);
        await using RunningServer server = await RunningServer.StartAsync(versions: 1, maxRequestBodyBytes: MaxBodyBytes, logs: logs);
        Prometheus.Counter.Child aborted = ContinualServeMetrics.InferenceRequests.WithLabels("test-model", "aborted");
        Prometheus.Counter.Child badRequest = ContinualServeMetrics.InferenceRequests.WithLabels("test-model", "bad_request");
        double before = aborted.Value + badRequest.Value;

        for (int index = 0; index < Resets; index++)
        {
            foreach (string path in paths)
            {
                await ResetMidBodyAsync(server, path);
            }
        }

        double expected = before + (Resets * paths.Length);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (aborted.Value + badRequest.Value < expected && !deadline.IsCancellationRequested)
        {
            await Task.Delay(50, CancellationToken.None);
        }

        // Other test classes may count bad requests of the same model at the same time, so only a shortfall is a failure.
        (aborted.Value + badRequest.Value).ShouldBeGreaterThanOrEqualTo(expected, "requests counted with outcome aborted or bad_request");
        logs.Recorder.Entries.ShouldBeEmpty("error log entries for requests whose client reset the connection");
        (await SendAsync(server, Encoding.UTF8.GetBytes(InferenceRequests.Body(1, Features)), expectOk: true, "valid")).ShouldBe(HttpStatusCode.OK);
    }

    // Sends the headers and the first 32 KiB of a longer body, then resets the connection (RST) while the server reads it.
    private static async Task ResetMidBodyAsync(RunningServer server, string path)
    {
        byte[] start = Encoding.UTF8.GetBytes("{\"inputs\":[{\"name\":\"input\",\"data\":[" + new string(' ', 32 * 1024));
        using var client = new TcpClient();
        await client.ConnectAsync(server.Client.BaseAddress!.Host, server.Client.BaseAddress.Port);
        NetworkStream stream = client.GetStream();
        string head = $"POST /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {MaxBodyBytes}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        await stream.WriteAsync(start);
        await stream.FlushAsync();
        await Task.Delay(50);
        // A zero timeout closes the socket with a reset. TcpClient.Close would shut it down in order first.
        client.Client.Close(timeout: 0);
    }

    internal static async Task<HttpStatusCode> SendAsync(RunningServer server, byte[] body, bool expectOk, string kind)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, InferPath) { Content = content };

        // Only with "Expect: 100-continue" does a client receive the 413 before sending a body over the limit.
        // Without it the server closes the connection while the client is still writing.
        request.Headers.ExpectContinue = body.Length > MaxBodyBytes;
        using HttpResponseMessage response = await server.Client.SendAsync(request);
        if (!expectOk && (int)response.StatusCode is >= 400 and < 500)
        {
            string text = await response.Content.ReadAsStringAsync();
            using JsonDocument error = JsonDocument.Parse(text);
            error.RootElement.GetProperty("error").GetString().ShouldNotBeNullOrEmpty($"{kind}: {text}");
        }

        return response.StatusCode;
    }

    internal static (string Kind, byte[] Body) MalformedBody(Random random)
    {
        string valid = InferenceRequests.Body(random.Next(1, 4), Features);
        int kind = random.Next(16);
        return kind switch
        {
            0 => ("truncated", Encoding.UTF8.GetBytes(valid[..random.Next(0, valid.Length - 1)])),
            1 => ("trailing garbage", Encoding.UTF8.GetBytes(valid + RandomText(random, random.Next(1, 8)))),
            2 => ("datatype", Encoding.UTF8.GetBytes(InferenceRequests.Body(1, Features, datatype: Pick(random, "INT64", "FP16", "fp32", "BYTES", "", "FP32 ")))),
            3 => ("shape mismatch", Encoding.UTF8.GetBytes(InferenceRequests.Body(1, Features, shape: WrongShape(random)))),
            4 => ("data length", Encoding.UTF8.GetBytes(InferenceRequests.Body(1, Features, data: Numbers(random, random.Next(0, 3 * Features) is var n && n == Features ? n + 1 : n)))),
            5 => ("data item type", Encoding.UTF8.GetBytes(InferenceRequests.Body(1, Features, data: DataWithBadItem(random)))),
            6 => ("non-finite literal", Encoding.UTF8.GetBytes(InferenceRequests.Body(1, Features, data: DataWith(random, Pick(random, "NaN", "Infinity", "-Infinity", "1e39", "-3.5e38", "nan"))))),
            7 => ("empty batch", Encoding.UTF8.GetBytes(InferenceRequests.Body(0, Features, shape: $"[0,{Features}]", data: "[]"))),
            8 => ("batch too large", Encoding.UTF8.GetBytes(InferenceRequests.Body(1, Features, shape: $"[{random.Next(65, 100_000)},{Features}]"))),
            9 => ("inputs", Encoding.UTF8.GetBytes(Pick(random, "{}", "{\"inputs\":[]}", "{\"inputs\":{}}", "{\"inputs\":null}", "{\"inputs\":[1]}", "{\"inputs\":\"x\"}", "{\"inputs\":[{},{}]}"))),
            10 => ("top level", Encoding.UTF8.GetBytes(Pick(random, "", " ", "[]", "null", "42", "\"text\"", "true", "{", "}", "[{\"inputs\":[]}]"))),
            11 => ("deep nesting", Encoding.UTF8.GetBytes(InferenceRequests.Body(1, Features, data: new string('[', random.Next(9, 2000)) + "1" + new string(']', random.Next(0, 2000))))),
            12 => ("random bytes", RandomBytes(random)),
            13 => ("oversized", Encoding.UTF8.GetBytes(InferenceRequests.Body(1, Features, data: "[" + new string(' ', MaxBodyBytes + random.Next(1, 10_000)) + "1]"))),
            14 => ("shape values", Encoding.UTF8.GetBytes(InferenceRequests.Body(1, Features, shape: Pick(random, "[-1,16]", "[1.5,16]", "[\"1\",16]", "[1,16,1,1,1,1,1,1,1]", "[9223372036854775807,16]", "[1,4294967296,4294967296]", "[]", "null", "[[1,16]]")))),
            _ => ("invalid utf-8", [.. Encoding.UTF8.GetBytes("{\"id\":\""), 0xC3, 0x28, 0xFF, .. Encoding.UTF8.GetBytes("\",\"inputs\":[")]),
        };
    }

    private static string WrongShape(Random random)
    {
        while (true)
        {
            int rows = random.Next(1, 4);
            int columns = random.Next(1, 40);
            if (columns != Features)
            {
                return random.Next(2) == 0 ? $"[{rows},{columns}]" : $"[{rows * columns}]";
            }
        }
    }

    private static string Numbers(Random random, int count) =>
        "[" + string.Join(",", Enumerable.Range(0, count).Select(_ => random.Next(0, 255).ToString(CultureInfo.InvariantCulture))) + "]";

    private static string DataWithBadItem(Random random) => DataWith(random, Pick(random, "\"1\"", "null", "true", "{}", "{\"a\":1}", "\"\"", "[]x"));

    private static string DataWith(Random random, string item)
    {
        string[] values = Enumerable.Range(0, Features).Select(index => index.ToString(CultureInfo.InvariantCulture)).ToArray();
        values[random.Next(Features)] = item;
        return "[" + string.Join(",", values) + "]";
    }

    private static byte[] RandomBytes(Random random)
    {
        var bytes = new byte[random.Next(1, 2048)];
        random.NextBytes(bytes);
        bytes[0] = random.Next(2) == 0 ? (byte)'{' : bytes[0];
        return bytes;
    }

    // Starts with a character that is not JSON whitespace, so the text is always garbage after the object.
    private static string RandomText(Random random, int length)
    {
        const string characters = "x{}[],:\"1a ";
        return new string(Enumerable.Range(0, length).Select(index => characters[random.Next(index == 0 ? characters.Length - 1 : characters.Length)]).ToArray());
    }

    private static string Pick(Random random, params string[] choices) => choices[random.Next(choices.Length)];

    internal static string Preview(byte[] body) => Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, 160));
}

/// <summary>
/// Seeded fuzzing of the inference route with malformed bodies. Every response must be a 4xx with a JSON error, the
/// server must stay healthy and serve valid requests, and its managed memory must stay bounded.
/// </summary>
/// <remarks>
/// Runs alone, because the managed heap it measures is the whole test process's. Run beside the other server tests
/// (some of which send 4 MiB bodies), it once measured 39 MB of growth against its 32 MB bound.
/// </remarks>
[Collection(nameof(MalformedBodyMemoryTests))]
[CollectionDefinition(nameof(MalformedBodyMemoryTests), DisableParallelization = true)]
public sealed class MalformedBodyMemoryTests
{
    private const int Cases = 1200;

    [Fact]
    public async Task MalformedBodiesAllGetClientErrors()
    {
        await using RunningServer server = await RunningServer.StartAsync(versions: 1, maxRequestBodyBytes: MalformedBodyFuzzTests.MaxBodyBytes);
        var random = new Random(4242);
        await MalformedBodyFuzzTests.SendAsync(server, Encoding.UTF8.GetBytes(InferenceRequests.Body(2, MalformedBodyFuzzTests.Features)), expectOk: true, "warm-up");
        long managedBefore = GC.GetTotalMemory(forceFullCollection: true);

        var failures = new List<string>();
        for (int index = 0; index < Cases; index++)
        {
            (string kind, byte[] body) = MalformedBodyFuzzTests.MalformedBody(random);
            HttpStatusCode status;
            try
            {
                status = await MalformedBodyFuzzTests.SendAsync(server, body, expectOk: false, kind);
            }
            catch (HttpRequestException exception)
            {
                failures.Add($"case {index} ({kind}) failed: {exception.InnerException?.Message ?? exception.Message}: {MalformedBodyFuzzTests.Preview(body)}");
                continue;
            }

            if ((int)status is < 400 or > 499)
            {
                failures.Add($"case {index} ({kind}) got {(int)status}: {MalformedBodyFuzzTests.Preview(body)}");
            }
        }

        long managedAfter = GC.GetTotalMemory(forceFullCollection: true);
        failures.ShouldBeEmpty();
        using HttpResponseMessage live = await server.Client.GetAsync("v2/health/live");
        live.StatusCode.ShouldBe(HttpStatusCode.OK);
        (await MalformedBodyFuzzTests.SendAsync(server, Encoding.UTF8.GetBytes(InferenceRequests.Body(3, MalformedBodyFuzzTests.Features)), expectOk: true, "valid")).ShouldBe(HttpStatusCode.OK);
        (managedAfter - managedBefore).ShouldBeLessThan(32L * 1024 * 1024, "managed heap growth over the fuzz run, in bytes");
    }
}
