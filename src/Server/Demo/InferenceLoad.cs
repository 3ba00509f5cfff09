using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ContinualServe.Learner.Data;

namespace ContinualServe.Server.Demo;

/// <summary>
/// A bounded inference load: a fixed number of clients send one-image Open Inference Protocol requests
/// from a test set to a server on 127.0.0.1, pausing between requests, until stopped. Counts successes,
/// failures and correct predictions, and records the newest model version seen in responses.
/// </summary>
public sealed class InferenceLoad
{
    private readonly byte[][] bodies;
    private readonly int[] labels;
    private long succeeded;
    private long failed;
    private long correct;
    private long newestVersion;

    public InferenceLoad(IdxDataset testSet, int maxDistinctRequests = 1000)
    {
        ArgumentNullException.ThrowIfNull(testSet);
        int count = Math.Min(testSet.Count, maxDistinctRequests);
        bodies = new byte[count][];
        labels = new int[count];
        for (int index = 0; index < count; index++)
        {
            bodies[index] = BuildBody(testSet.Image(index), index);
            labels[index] = testSet.Labels[index];
        }
    }

    public long Succeeded => Interlocked.Read(ref succeeded);

    public long Failed => Interlocked.Read(ref failed);

    public long Correct => Interlocked.Read(ref correct);

    public long NewestVersion => Interlocked.Read(ref newestVersion);

    /// <summary>Sends requests with <paramref name="clients"/> concurrent clients until <paramref name="cancellation"/> fires.</summary>
    public async Task RunAsync(Uri inferUri, int clients, TimeSpan pause, CancellationToken cancellation)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        Task[] workers = Enumerable.Range(0, clients)
            .Select(client => Task.Run(() => ClientLoopAsync(http, inferUri, client, clients, pause, cancellation), CancellationToken.None))
            .ToArray();
        await Task.WhenAll(workers).ConfigureAwait(false);
    }

    private async Task ClientLoopAsync(HttpClient http, Uri inferUri, int client, int clients, TimeSpan pause, CancellationToken cancellation)
    {
        for (int index = client; !cancellation.IsCancellationRequested; index += clients)
        {
            int item = index % bodies.Length;
            await SendAsync(http, inferUri, item).ConfigureAwait(false);
            try
            {
                await Task.Delay(pause, cancellation).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task SendAsync(HttpClient http, Uri inferUri, int item)
    {
        try
        {
            using var content = new ByteArrayContent(bodies[item]);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using HttpResponseMessage response = await http.PostAsync(inferUri, content, CancellationToken.None).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                Interlocked.Increment(ref failed);
                return;
            }

            using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync(CancellationToken.None).ConfigureAwait(false));
            Record(document.RootElement, labels[item]);
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException or JsonException)
        {
            Interlocked.Increment(ref failed);
        }
    }

    private void Record(JsonElement response, int expectedLabel)
    {
        Interlocked.Increment(ref succeeded);
        long version = long.Parse(response.GetProperty("model_version").GetString()!, CultureInfo.InvariantCulture);
        long seen = Interlocked.Read(ref newestVersion);
        while (version > seen && Interlocked.CompareExchange(ref newestVersion, version, seen) != seen)
        {
            seen = Interlocked.Read(ref newestVersion);
        }

        foreach (JsonElement output in response.GetProperty("outputs").EnumerateArray())
        {
            if (output.GetProperty("name").GetString() == "label" && output.GetProperty("data")[0].GetInt32() == expectedLabel)
            {
                Interlocked.Increment(ref correct);
            }
        }
    }

    private static byte[] BuildBody(ReadOnlySpan<byte> pixels, int index)
    {
        var builder = new StringBuilder(4096);
        builder.Append(CultureInfo.InvariantCulture, $"{{\"id\":\"test-{index}\",\"inputs\":[{{\"name\":\"input\",\"shape\":[1,{pixels.Length}],\"datatype\":\"FP32\",\"data\":[");
        for (int position = 0; position < pixels.Length; position++)
        {
            if (position > 0)
            {
                builder.Append(',');
            }

            builder.Append(pixels[position].ToString(CultureInfo.InvariantCulture));
        }

        builder.Append("]}]}");
        return Encoding.UTF8.GetBytes(builder.ToString());
    }
}
