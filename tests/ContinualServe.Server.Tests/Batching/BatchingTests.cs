using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ContinualServe.Server.Batching;
using ContinualServe.Server.Tests.Inference;
using Microsoft.Extensions.DependencyInjection;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Batching;

// Timing matters here, so these tests do not run beside the fuzz and management tests.
[Collection(nameof(BatchingTests))]
[CollectionDefinition(nameof(BatchingTests), DisableParallelization = true)]
public sealed class BatchingTests
{
    private const string InferPath = "v2/models/test-model/infer";

    [Fact]
    public async Task SixteenRequestsShareForwardPasses()
    {
        await using RunningServer server = await RunningServer.StartAsync(configureBatching: batching =>
        {
            batching.MaxBatchSize = 16;

            // The maximum window the options allow, and a full batch runs at once.
            batching.MaxQueueDelay = TimeSpan.FromSeconds(10);
            batching.RequestTimeout = TimeSpan.FromSeconds(30);
        });
        InferenceBatcher batcher = server.App.Services.GetRequiredService<InferenceBatcher>();
        long passesBefore = batcher.ForwardPasses;

        // Open 16 pooled connections first, so that connection set-up cannot hold one request back.
        HttpResponseMessage[] warmUp = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => server.Client.GetAsync("v2/health/live")));
        warmUp.ShouldAllBe(response => response.StatusCode == HttpStatusCode.OK);

        HttpResponseMessage[] responses = await Task.WhenAll(Enumerable.Range(0, 16)
            .Select(index => server.Client.PostAsync(InferPath, InferenceRequests.Json(Body(index)))));

        responses.ShouldAllBe(response => response.StatusCode == HttpStatusCode.OK);

        // Without batching each request would run alone.
        (batcher.ForwardPasses - passesBefore).ShouldBe(1);
    }

    // A request that arrived while the worker was between collecting the queue and deciding whether the batch was
    // full made a half-full batch run at once, so requests that came together took two passes. Submitting straight to
    // the batcher from 16 threads at once hit that moment within 16 to 25 rounds. The rest of a split batch then
    // waited out the whole queue delay, so the test stops at the first split round.
    [Fact]
    public async Task RequestsArrivingTogetherRunInOnePass()
    {
        const int requests = 16;
        const int rounds = 300;
        await using RunningServer server = await RunningServer.StartAsync(configureBatching: batching =>
        {
            batching.MaxBatchSize = requests;
            batching.MaxQueueDelay = TimeSpan.FromSeconds(10);
            batching.RequestTimeout = TimeSpan.FromSeconds(30);
        });
        InferenceBatcher batcher = server.App.Services.GetRequiredService<InferenceBatcher>();
        using var start = new Barrier(requests);
        int? splitRound = null;

        for (int round = 0; round < rounds && splitRound is null; round++)
        {
            long passesBefore = batcher.ForwardPasses;
            Task<BatchOutcome>[] submitted = Enumerable.Range(0, requests)
                .Select(_ => Task.Factory.StartNew(
                    () =>
                    {
                        start.SignalAndWait(TimeSpan.FromSeconds(10)).ShouldBeTrue();
                        return batcher.SubmitAsync(System.Buffers.ArrayPool<float>.Shared.Rent(16), 1, 16, null);
                    },
                    CancellationToken.None,
                    TaskCreationOptions.LongRunning,
                    TaskScheduler.Default).Unwrap())
                .ToArray();
            BatchOutcome[] outcomes = await Task.WhenAll(submitted).WaitAsync(TimeSpan.FromSeconds(30));

            outcomes.ShouldAllBe(outcome => outcome.Status == BatchStatus.Completed);
            if (batcher.ForwardPasses - passesBefore != 1)
            {
                splitRound = round;
            }
        }

        splitRound.ShouldBeNull("the round whose 16 requests ran in more than one pass");
    }

    [Fact]
    public async Task UnpooledBufferStillCompletes()
    {
        await using RunningServer server = await RunningServer.StartAsync();
        InferenceBatcher batcher = server.App.Services.GetRequiredService<InferenceBatcher>();

        // 48 values is no size that ArrayPool<float>.Shared hands out, so returning the array to it throws.
        Task<BatchOutcome> submitted = batcher.SubmitAsync(new float[3 * 16], 3, 16, null);

        (await submitted.WaitAsync(TimeSpan.FromSeconds(30))).Status.ShouldBe(BatchStatus.Completed);
    }

    [Fact]
    public async Task RowsOfAnotherWidthAreNotRun()
    {
        await using RunningServer server = await RunningServer.StartAsync();
        InferenceBatcher batcher = server.App.Services.GetRequiredService<InferenceBatcher>();
        long passesBefore = batcher.ForwardPasses;

        // Rows validated against a 15-feature model reach a batch of the 16-feature one, as after a swap between them.
        BatchOutcome outcome = await batcher.SubmitAsync(System.Buffers.ArrayPool<float>.Shared.Rent(2 * 15), 2, 15, null).WaitAsync(TimeSpan.FromSeconds(30));

        outcome.Status.ShouldBe(BatchStatus.InputShapeChanged);
        outcome.Version.ShouldBe(1);
        batcher.ForwardPasses.ShouldBe(passesBefore);
    }

    [Fact]
    public async Task BatchedOutputsEqualSingleOutputs()
    {
        await using RunningServer server = await RunningServer.StartAsync(configureBatching: batching =>
        {
            batching.MaxBatchSize = 16;
            batching.MaxQueueDelay = TimeSpan.FromSeconds(5);
            batching.RequestTimeout = TimeSpan.FromSeconds(30);
        });
        float[][] batched = await Task.WhenAll(Enumerable.Range(0, 16).Select(index => Probabilities(server, Body(index))));

        await using RunningServer single = await RunningServer.StartAsync();
        for (int index = 0; index < 16; index++)
        {
            float[] alone = await Probabilities(single, Body(index));
            alone.Length.ShouldBe(3);
            for (int column = 0; column < alone.Length; column++)
            {
                // libtorch picks different GEMM kernels for 16 rows than for one, so the last bits differ (seen: 2e-8).
                batched[index][column].ShouldBe(alone[column], 1e-6f);
            }
        }
    }

    [Fact]
    public async Task LoneRequestWaitsAtMostQueueDelay()
    {
        TimeSpan delay = TimeSpan.FromMilliseconds(300);
        await using RunningServer server = await RunningServer.StartAsync(configureBatching: batching =>
        {
            batching.MaxQueueDelay = delay;
        });
        using HttpResponseMessage warmup = await server.Client.PostAsync(InferPath, InferenceRequests.Json(Body(0)));

        var clock = Stopwatch.StartNew();
        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(Body(1)));
        clock.Stop();

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        clock.Elapsed.ShouldBeGreaterThanOrEqualTo(delay - TimeSpan.FromMilliseconds(20));
        clock.Elapsed.ShouldBeLessThan(delay + TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task ZeroDelayDoesNotWait()
    {
        await using RunningServer server = await RunningServer.StartAsync(configureBatching: batching => batching.MaxQueueDelay = TimeSpan.Zero);

        var clock = Stopwatch.StartNew();
        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(Body(1)));

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        clock.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task FullQueueGets429WithRetryAfter()
    {
        // The long delay keeps the first two requests waiting for batch partners until the server stops.
        await using RunningServer server = await RunningServer.StartAsync(configureBatching: batching =>
        {
            batching.QueueCapacity = 2;
            batching.MaxQueueDelay = TimeSpan.FromSeconds(10);
            batching.RequestTimeout = TimeSpan.FromSeconds(30);
        });
        Task<HttpResponseMessage> first = server.Client.PostAsync(InferPath, InferenceRequests.Json(Body(0)));
        Task<HttpResponseMessage> second = server.Client.PostAsync(InferPath, InferenceRequests.Json(Body(1)));
        InferenceBatcher batcher = server.App.Services.GetRequiredService<InferenceBatcher>();
        await WaitUntil(() => batcher.WaitingRequests == 2);

        using HttpResponseMessage rejected = await server.Client.PostAsync(InferPath, InferenceRequests.Json(Body(2)));

        rejected.StatusCode.ShouldBe(HttpStatusCode.TooManyRequests);
        rejected.Headers.RetryAfter.ShouldNotBeNull();
        (await rejected.Content.ReadAsStringAsync()).ShouldContain("2 requests (Batching:QueueCapacity)");
        first.IsCompleted.ShouldBeFalse();
        second.IsCompleted.ShouldBeFalse();
        (await first).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await second).StatusCode.ShouldBe(HttpStatusCode.OK);
    }

    [Fact]
    public async Task ExpiredDeadlineGets503()
    {
        await using RunningServer server = await RunningServer.StartAsync(configureBatching: batching =>
        {
            batching.RequestTimeout = TimeSpan.FromMilliseconds(100);
            batching.MaxQueueDelay = TimeSpan.FromMilliseconds(400);
        });

        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(Body(0)));

        response.StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        string error = await response.Content.ReadAsStringAsync();
        error.ShouldContain("deadline");
        error.ShouldContain("0.1 s (Batching:RequestTimeout)");
    }

    [Fact]
    public async Task BinaryAndJsonOutputsAreIdentical()
    {
        await using RunningServer server = await RunningServer.StartAsync();
        float[] features = Enumerable.Range(0, 2 * 16).Select(index => (index % 5) * 0.5f).ToArray();
        string json = InferenceRequests.Body(2, 16, data: "[" + string.Join(",", features.Select(value => value.ToString(System.Globalization.CultureInfo.InvariantCulture))) + "]");
        float[] fromJson = await Probabilities(server, json);

        string header = "{\"inputs\":[{\"name\":\"input\",\"shape\":[2,16],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":128}}],\"parameters\":{\"binary_data_output\":true}}";
        byte[] headerBytes = Encoding.UTF8.GetBytes(header);
        byte[] body = new byte[headerBytes.Length + (features.Length * 4)];
        headerBytes.CopyTo(body, 0);
        for (int index = 0; index < features.Length; index++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(body.AsSpan(headerBytes.Length + (index * 4)), features[index]);
        }

        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", headerBytes.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, content);

        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        int responseHeaderLength = int.Parse(response.Headers.GetValues("Inference-Header-Content-Length").Single(), System.Globalization.CultureInfo.InvariantCulture);
        byte[] responseBody = await response.Content.ReadAsByteArrayAsync();
        using JsonDocument responseHeader = JsonDocument.Parse(responseBody.AsMemory(0, responseHeaderLength));
        responseHeader.RootElement.GetProperty("outputs")[0].GetProperty("parameters").GetProperty("binary_data_size").GetInt32().ShouldBe(24);
        float[] fromBinary = Enumerable.Range(0, 6)
            .Select(index => BinaryPrimitives.ReadSingleLittleEndian(responseBody.AsSpan(responseHeaderLength + (index * 4))))
            .ToArray();
        fromBinary.ShouldBe(fromJson);
        long firstLabel = BinaryPrimitives.ReadInt64LittleEndian(responseBody.AsSpan(responseHeaderLength + 24));
        firstLabel.ShouldBe(Array.IndexOf(fromJson, fromJson.Take(3).Max()));
    }

    [Fact]
    public async Task BinarySizeMismatchGets400()
    {
        await using RunningServer server = await RunningServer.StartAsync();
        string header = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,16],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":64}}]}";
        byte[] headerBytes = Encoding.UTF8.GetBytes(header);
        using var content = new ByteArrayContent([.. headerBytes, .. new byte[60]]);
        content.Headers.Add("Inference-Header-Content-Length", headerBytes.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));

        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, content);

        response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await response.Content.ReadAsStringAsync()).ShouldContain("binary_data_size");
    }

    private static string Body(int seed)
    {
        string data = "[" + string.Join(",", Enumerable.Range(0, 16).Select(index => ((index * (seed + 3)) % 11).ToString(System.Globalization.CultureInfo.InvariantCulture))) + "]";
        return InferenceRequests.Body(1, 16, data: data);
    }

    private static async Task<float[]> Probabilities(RunningServer server, string body)
    {
        using HttpResponseMessage response = await server.Client.PostAsync(InferPath, InferenceRequests.Json(body));
        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        using JsonDocument document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(value => value.GetSingle()).ToArray();
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            clock.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(10));
            await Task.Delay(5);
        }
    }
}
