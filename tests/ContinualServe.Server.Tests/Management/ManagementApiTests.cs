using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Management;

/// <summary>Bearer-token authorization and behaviour of every management route.</summary>
public sealed class ManagementApiTests
{
    public static TheoryData<string, string> Routes => new()
    {
        { "GET", "manage/v1/versions" },
        { "POST", "manage/v1/versions/1/promote" },
        { "POST", "manage/v1/rollback" },
        { "DELETE", "manage/v1/pin" },
        { "GET", "manage/v1/learning" },
        { "POST", "manage/v1/learning/pause" },
        { "POST", "manage/v1/learning/resume" },
        { "GET", "manage/v1/golden-set" },
        { "PUT", "manage/v1/golden-set" },
        { "DELETE", "manage/v1/golden-set" },
    };

    [Theory]
    [MemberData(nameof(Routes))]
    public async Task RouteRejectsMissingAndWrongTokens(string method, string path)
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 2, separatePort: false);

        using HttpResponseMessage missing = await server.Management.SendAsync(Request(method, path, token: null));
        using HttpResponseMessage otherScheme = await server.Management.SendAsync(Request(method, path, token: null, basic: true));
        using HttpResponseMessage wrong = await server.Management.SendAsync(Request(method, path, token: ManagementServer.Token + "x"));
        using HttpResponseMessage truncated = await server.Management.SendAsync(Request(method, path, token: ManagementServer.Token[..^1]));

        missing.StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        missing.Headers.WwwAuthenticate.ToString().ShouldBe("Bearer");
        otherScheme.StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        wrong.StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        truncated.StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        StoreControlFiles.ReadPinnedVersion(server.Store.RootDirectory).ShouldBeNull();
        StoreControlFiles.IsLearningPaused(server.Store.RootDirectory).ShouldBeFalse();
        File.Exists(Path.Combine(server.Store.RootDirectory, GoldenSet.FileName)).ShouldBeFalse();
        server.App.Services.GetLiveVersion().ShouldBe(2);
    }

    [Fact]
    public async Task EveryRouteSucceedsWithToken()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 3, separatePort: false);
        string store = server.Store.RootDirectory;

        JsonElement versions = await SendOkAsync(server, "GET", "manage/v1/versions");
        versions.GetProperty("live").GetInt64().ShouldBe(3);
        versions.GetProperty("versions").GetArrayLength().ShouldBe(3);

        JsonElement promoted = await SendOkAsync(server, "POST", "manage/v1/versions/1/promote");
        promoted.GetProperty("live").GetInt64().ShouldBe(1);
        StoreControlFiles.ReadPinnedVersion(store).ShouldBe(1);

        await SendOkAsync(server, "DELETE", "manage/v1/pin");
        StoreControlFiles.ReadPinnedVersion(store).ShouldBeNull();
        server.App.Services.GetLiveVersion().ShouldBe(3);

        JsonElement rolledBack = await SendOkAsync(server, "POST", "manage/v1/rollback");
        rolledBack.GetProperty("live").GetInt64().ShouldBe(2);
        StoreControlFiles.ReadPinnedVersion(store).ShouldBe(2);

        (await SendOkAsync(server, "POST", "manage/v1/learning/pause")).GetProperty("paused").GetBoolean().ShouldBeTrue();
        StoreControlFiles.IsLearningPaused(store).ShouldBeTrue();
        (await SendOkAsync(server, "GET", "manage/v1/learning")).GetProperty("paused").GetBoolean().ShouldBeTrue();
        (await SendOkAsync(server, "POST", "manage/v1/learning/resume")).GetProperty("paused").GetBoolean().ShouldBeFalse();
        StoreControlFiles.IsLearningPaused(store).ShouldBeFalse();

        (await SendOkAsync(server, "PUT", "manage/v1/golden-set")).GetProperty("examples").GetInt32().ShouldBe(2);
        GoldenSet.TryLoad(store).ShouldNotBeNull().Examples.Count.ShouldBe(2);
        (await SendOkAsync(server, "GET", "manage/v1/golden-set")).GetProperty("examples").GetInt32().ShouldBe(2);

        (await SendOkAsync(server, "DELETE", "manage/v1/golden-set")).GetProperty("deleted").GetBoolean().ShouldBeTrue();
        GoldenSet.TryLoad(store).ShouldBeNull();
        using HttpResponseMessage afterDelete = await server.Management.SendAsync(Request("GET", "manage/v1/golden-set", ManagementServer.Token));
        afterDelete.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        using HttpResponseMessage secondDelete = await server.Management.SendAsync(Request("DELETE", "manage/v1/golden-set", ManagementServer.Token));
        secondDelete.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        using JsonDocument secondDeleteError = JsonDocument.Parse(await secondDelete.Content.ReadAsStringAsync());
        secondDeleteError.RootElement.GetProperty("error").GetString().ShouldBe(
            "There is no golden set to delete: none was uploaded, or it was already deleted.");
        secondDeleteError.RootElement.GetProperty("expected").GetString().ShouldBe("nothing, or PUT /manage/v1/golden-set to store one");
    }

    // A directory at the golden set's path makes the learner reject every candidate as having an unreadable golden set,
    // so the API must not report it as "not uploaded".
    [Fact]
    public async Task DirectoryAtGoldenSetPathIsReported()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        Directory.CreateDirectory(Path.Combine(server.Store.RootDirectory, GoldenSet.FileName));

        using HttpResponseMessage get = await server.Management.SendAsync(Request("GET", "manage/v1/golden-set", ManagementServer.Token));
        using HttpResponseMessage delete = await server.Management.SendAsync(Request("DELETE", "manage/v1/golden-set", ManagementServer.Token));

        get.StatusCode.ShouldBe(HttpStatusCode.Conflict);
        string getBody = await get.Content.ReadAsStringAsync();
        getBody.ShouldContain("is a directory, not a golden set");
        getBody.ShouldContain("by hand");
        delete.StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        (await delete.Content.ReadAsStringAsync()).ShouldContain("Remove it by hand");
        Directory.Exists(Path.Combine(server.Store.RootDirectory, GoldenSet.FileName)).ShouldBeTrue();
    }

    [Fact]
    public async Task PinHoldsWhenNewVersionIsPublished()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 3, separatePort: false);
        ModelSwapper swapper = server.App.Services.GetRequiredService<ModelSwapper>();
        await SendOkAsync(server, "POST", "manage/v1/versions/1/promote");
        server.Store.TryLoad(3, out ModelVersion? newest).ShouldBeTrue();

        // What the learner (in the all role) and the version subscriber do when a version is published.
        swapper.TrySwapToPublished(newest!).ShouldBeFalse();
        server.App.Services.GetLiveVersion().ShouldBe(1);

        await SendOkAsync(server, "DELETE", "manage/v1/pin");
        server.App.Services.GetLiveVersion().ShouldBe(3);
    }

    [Fact]
    public async Task InvalidRequestsGetClientErrors()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false);

        using HttpResponseMessage notNumber = await server.Management.SendAsync(Request("POST", "manage/v1/versions/abc/promote", ManagementServer.Token));
        using HttpResponseMessage missing = await server.Management.SendAsync(Request("POST", "manage/v1/versions/9/promote", ManagementServer.Token));
        using HttpResponseMessage noOlder = await server.Management.SendAsync(Request("POST", "manage/v1/rollback", ManagementServer.Token));
        using HttpResponseMessage badGolden = await server.Management.SendAsync(Request("PUT", "manage/v1/golden-set", ManagementServer.Token, body: "{\"examples\":[{\"label\":7,\"features\":[1]}]}"));
        using HttpResponseMessage notJson = await server.Management.SendAsync(Request("PUT", "manage/v1/golden-set", ManagementServer.Token, body: "{\"examples\":["));

        notNumber.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        missing.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        noOlder.StatusCode.ShouldBe(HttpStatusCode.Conflict);
        badGolden.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await badGolden.Content.ReadAsStringAsync()).ShouldContain("label 7");
        notJson.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task GoldenSetOverLimitGets413(bool chunked)
    {
        const int LimitBytes = 64 * 1024;
        await using ManagementServer server = await ManagementServer.StartAsync(
            versions: 1, separatePort: false, extraArguments: $"--Server:MaxRequestBodyBytes={LimitBytes}");
        byte[] body = Encoding.UTF8.GetBytes("{\"examples\":[" + new string(' ', 2 * LimitBytes) + "]}");
        using HttpRequestMessage request = Request("PUT", "manage/v1/golden-set", ManagementServer.Token);
        request.Content = chunked ? new StreamContent(new MemoryStream(body)) : new ByteArrayContent(body);
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");

        // With Content-Length, only "Expect: 100-continue" lets the client read the 413 before it sends the body.
        request.Headers.ExpectContinue = !chunked;
        using HttpResponseMessage response = await server.Management.SendAsync(request);

        response.StatusCode.ShouldBe(HttpStatusCode.RequestEntityTooLarge);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        error.RootElement.GetProperty("error").GetString().ShouldNotBeNull().ShouldContain("Server:MaxRequestBodyBytes");
        File.Exists(Path.Combine(server.Store.RootDirectory, GoldenSet.FileName)).ShouldBeFalse();
    }

    [Theory]
    [InlineData("{}", "The golden set is invalid: the top-level object is missing the required property 'examples'.")]
    [InlineData("{\"examples\":[{\"features\":[]}]}", "The golden set is invalid: an example is missing the required property 'label'.")]
    public async Task MissingGoldenSetPropertyIsNamed(string body, string message)
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false);

        using HttpResponseMessage response = await server.Management.SendAsync(Request("PUT", "manage/v1/golden-set", ManagementServer.Token, body: body));

        response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        error.RootElement.GetProperty("error").GetString().ShouldBe(message, "an error without .NET type names");
    }

    // One server for all cases, because each start loads a model. Names match without regard to case, as the
    // golden set reads them.
    [Fact]
    public async Task EmptyOrDuplicateGoldenSetGets400Message()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        (string Body, string Field, string Message)[] cases =
        [
            ("", "body", "The request body is empty. Send a JSON object with an 'examples' array."),
            ("{\"examples\":[],\"examples\":[]}", "examples", "The request body contains the property examples twice (property names are matched without regard to case)."),
            ("{\"examples\":[],\"Examples\":[]}", "Examples", "The request body contains the property Examples twice (property names are matched without regard to case)."),
            ("{\"examples\":[{\"label\":0,\"label\":1,\"features\":[]}]}", "examples[0].label", "The request body contains the property examples[0].label twice (property names are matched without regard to case)."),
        ];

        foreach ((string body, string field, string message) in cases)
        {
            using HttpResponseMessage response = await server.Management.SendAsync(Request("PUT", "manage/v1/golden-set", ManagementServer.Token, body: body));

            response.StatusCode.ShouldBe(HttpStatusCode.BadRequest, body);
            using JsonDocument error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            error.RootElement.GetProperty("field").GetString().ShouldBe(field, body);
            error.RootElement.GetProperty("error").GetString().ShouldBe(message, body);
        }
    }

    [Fact]
    public async Task SlowGoldenSetGets408NamingSettings()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(
            versions: 1,
            separatePort: false,
            extraArguments: ["--HttpLimits:MinRequestBodyBytesPerSecond=4096", "--HttpLimits:MinBodyRateGracePeriod=00:00:02"]);
        using var client = new TcpClient();
        await client.ConnectAsync(server.Management.BaseAddress!.Host, server.Management.BaseAddress.Port);
        NetworkStream stream = client.GetStream();
        string head = "PUT /manage/v1/golden-set HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + $"Authorization: Bearer {ManagementServer.Token}\r\nContent-Length: 1000\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));

        string answer = await SlowClient.TrickleUntilAnswerAsync(stream, TimeSpan.FromSeconds(10));

        answer.ShouldStartWith("HTTP/1.1 408");
        answer.ShouldContain("HttpLimits:MinRequestBodyBytesPerSecond");
        answer.ShouldContain("HttpLimits:MinBodyRateGracePeriod");
        answer.ShouldContain("\r\nConnection: close\r\n", Case.Insensitive, "Kestrel closes the connection after the 408");
    }

    // Parsing an upload takes about ten times its size in memory, so a second upload while one is in progress gets 409
    // instead of a second parse, and the next upload after it succeeds.
    [Fact]
    public async Task ConcurrentGoldenSetUploadGets409()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        using (var slow = new TcpClient())
        {
            await slow.ConnectAsync(server.Management.BaseAddress!.Host, server.Management.BaseAddress.Port);
            NetworkStream stream = slow.GetStream();
            string head = "PUT /manage/v1/golden-set HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + $"Authorization: Bearer {ManagementServer.Token}\r\nContent-Length: 100000\r\n\r\n{{\"examples\":[";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
            await stream.FlushAsync();

            // The slow upload's handler has to be running before the second one arrives, and its body never completes.
            // In one run of the full suite no second upload got 409 within 5 s, so the test waits up to 15 s. Meanwhile
            // the body trickles in at 2 KB/s (JSON spaces), above HttpLimits' minimum rate, so Kestrel does not end it
            // with a 408.
            using var stopTrickle = new CancellationTokenSource();
            Task trickle = TrickleSpacesAsync(stream, stopTrickle.Token);
            HttpStatusCode second = HttpStatusCode.OK;
            for (int attempt = 0; attempt < 150 && second != HttpStatusCode.Conflict; attempt++)
            {
                await Task.Delay(100);
                using HttpResponseMessage concurrent = await server.Management.SendAsync(Request("PUT", "manage/v1/golden-set", ManagementServer.Token));
                second = concurrent.StatusCode;
                if (second == HttpStatusCode.Conflict)
                {
                    concurrent.Headers.RetryAfter.ShouldNotBeNull();
                    (await concurrent.Content.ReadAsStringAsync()).ShouldContain("Another golden-set upload is in progress");
                }
            }

            await stopTrickle.CancelAsync();
            await trickle;
            second.ShouldBe(HttpStatusCode.Conflict);
        }

        // Closing the slow client ends its upload and frees the gate.
        HttpStatusCode after = HttpStatusCode.Conflict;
        for (int attempt = 0; attempt < 50 && after == HttpStatusCode.Conflict; attempt++)
        {
            await Task.Delay(100);
            using HttpResponseMessage next = await server.Management.SendAsync(Request("PUT", "manage/v1/golden-set", ManagementServer.Token));
            after = next.StatusCode;
        }

        after.ShouldBe(HttpStatusCode.OK);
    }

    [Theory]
    [InlineData("{\"examples\":null}", "examples")]
    [InlineData("{\"examples\":[null]}", "example 0")]
    [InlineData("{\"examples\":[{\"features\":FEATURES}]}", "label")]
    [InlineData("{\"exmples\":[{\"label\":1,\"features\":FEATURES}]}", "'examples'")]
    [InlineData("{\"examples\":[{\"label\":\"coat\",\"features\":FEATURES}]}", "the value at $.examples[0].label is not an integer")]
    [InlineData("{\"examples\":[{\"label\":1,\"features\":\"none\"}]}", "the value at $.examples[0].features is not an array of numbers")]
    [InlineData("{\"examples\":[{\"label\":1,\"features\":[\"a\"]}]}", "the value at $.examples[0].features[0] is not a finite number")]
    [InlineData("{\"examples\":[7]}", "the value at $.examples[0] is not an object with 'label' and 'features'")]
    [InlineData("[]", "the value at $ is not an object with 'examples'")]
    public async Task IncompleteGoldenSetGets400(string body, string named)
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        string features = JsonSerializer.Serialize(new float[RunningServer.Spec.FeatureCount]);

        using HttpResponseMessage response = await server.Management.SendAsync(
            Request("PUT", "manage/v1/golden-set", ManagementServer.Token, body: body.Replace("FEATURES", features, StringComparison.Ordinal)));
        using HttpResponseMessage stored = await server.Management.SendAsync(Request("GET", "manage/v1/golden-set", ManagementServer.Token));

        response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString().ShouldNotBeNull().ShouldContain(named);
        stored.StatusCode.ShouldBe(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task UnreadableGoldenSetGets409()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        await File.WriteAllTextAsync(Path.Combine(server.Store.RootDirectory, GoldenSet.FileName), "{\"examples\": [");

        using HttpResponseMessage response = await server.Management.SendAsync(Request("GET", "manage/v1/golden-set", ManagementServer.Token));

        response.StatusCode.ShouldBe(HttpStatusCode.Conflict);
        JsonElement error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        error.GetProperty("error").GetString().ShouldNotBeNull().ShouldContain("cannot be read");
        error.GetProperty("expected").GetString().ShouldNotBeNull().ShouldContain("PUT /manage/v1/golden-set");
    }

    // Numbers in strings are accepted, and System.Text.Json then reads "NaN" and "Infinity" as those values.
    [Theory]
    [InlineData("\"NaN\"", "feature 3 that is NaN (the string \"NaN\"), which is not allowed")]
    [InlineData("\"Infinity\"", "feature 3 that is infinite (the string \"Infinity\" or \"-Infinity\", or a number beyond the FP32 range")]
    [InlineData("1e39", "feature 3 that is infinite")]
    public async Task NonFiniteFeatureIsNamed(string value, string message)
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        string[] features = Enumerable.Repeat("0", RunningServer.Spec.FeatureCount).ToArray();
        features[3] = value;
        string body = $"{{\"examples\":[{{\"label\":1,\"features\":[{string.Join(',', features)}]}}]}}";

        using HttpResponseMessage response = await server.Management.SendAsync(Request("PUT", "manage/v1/golden-set", ManagementServer.Token, body: body));

        response.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        string error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString().ShouldNotBeNull();
        error.ShouldContain("Golden example 0 has " + message);
        error.ShouldNotContain("outside the FP32 range");
    }

    [Fact]
    public async Task HandWrittenGoldenSetReportsFileTime()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        string path = Path.Combine(server.Store.RootDirectory, GoldenSet.FileName);
        string features = JsonSerializer.Serialize(new float[RunningServer.Spec.FeatureCount]);
        await File.WriteAllTextAsync(path, $"{{\"examples\":[{{\"label\":1,\"features\":{features}}}]}}");
        var written = new DateTimeOffset(2026, 3, 4, 5, 6, 7, TimeSpan.Zero);
        File.SetLastWriteTimeUtc(path, written.UtcDateTime);

        JsonElement body = await SendOkAsync(server, "GET", "manage/v1/golden-set");

        body.GetProperty("examples").GetInt32().ShouldBe(1);
        body.GetProperty("uploadedAt").GetDateTimeOffset().ShouldBe(written);
    }

    // The learner holds its candidate while the stored set does not fit the model, so GET must not report it as usable.
    [Fact]
    public async Task MismatchedGoldenSetGets409()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        string features = JsonSerializer.Serialize(new float[10]);
        await File.WriteAllTextAsync(
            Path.Combine(server.Store.RootDirectory, GoldenSet.FileName), $"{{\"examples\":[{{\"label\":1,\"features\":{features}}}]}}");

        using HttpResponseMessage response = await server.Management.SendAsync(Request("GET", "manage/v1/golden-set", ManagementServer.Token));

        response.StatusCode.ShouldBe(HttpStatusCode.Conflict);
        JsonElement error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        string message = error.GetProperty("error").GetString().ShouldNotBeNull();
        message.ShouldContain("does not fit the live model");
        message.ShouldContain($"Golden example 0 has 10 features; expected {RunningServer.Spec.FeatureCount}.");
        message.ShouldContain("holds its next candidate");
        message.ShouldContain("error 235");
        error.GetProperty("expected").GetString().ShouldNotBeNull().ShouldContain("DELETE /manage/v1/golden-set");
    }

    // The version is checked under the store's version lock, and a load that misses a file checks for a deletion under
    // the same lock, so this request must not wait for a lock that it holds itself.
    [Theory]
    [InlineData("POST", "manage/v1/versions/2/promote")]
    [InlineData("POST", "manage/v1/rollback")]
    public async Task IncompleteVersionGetsPromptAnswer(string method, string path)
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 3, separatePort: false);
        File.Delete(Path.Combine(server.Store.VersionDirectory(2), ModelStore.WeightsFileName));
        File.Delete(Path.Combine(server.Store.VersionDirectory(1), ModelStore.WeightsFileName));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));

        using HttpResponseMessage response = await server.Management.SendAsync(Request(method, path, ManagementServer.Token), timeout.Token);

        response.StatusCode.ShouldBe(HttpStatusCode.Conflict);
        StoreControlFiles.ReadPinnedVersion(server.Store.RootDirectory).ShouldBeNull();
        server.App.Services.GetLiveVersion().ShouldBe(3);
    }

    [Fact]
    public async Task GoldenSetWithoutModelCountsUnavailable()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 0, separatePort: false);
        double unavailableBefore = ReliabilityMetrics.ManagementRequests.WithLabels("unavailable").Value;

        using HttpResponseMessage response = await server.Management.SendAsync(Request("PUT", "manage/v1/golden-set", ManagementServer.Token));

        response.StatusCode.ShouldBe(HttpStatusCode.ServiceUnavailable);
        (ReliabilityMetrics.ManagementRequests.WithLabels("unavailable").Value - unavailableBefore)
            .ShouldBeGreaterThanOrEqualTo(1, "a 503 is the server's state, not a bad request");
    }

    [Fact]
    public async Task GoldenSetInUtf16Gets415()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false);
        using HttpRequestMessage request = Request("PUT", "manage/v1/golden-set", ManagementServer.Token);
        request.Content = new StringContent(GoldenSetJson(), Encoding.Unicode, "application/json");

        using HttpResponseMessage response = await server.Management.SendAsync(request);
        using HttpResponseMessage stored = await server.Management.SendAsync(Request("GET", "manage/v1/golden-set", ManagementServer.Token));

        response.StatusCode.ShouldBe(HttpStatusCode.UnsupportedMediaType);
        (await response.Content.ReadAsStringAsync()).ShouldContain("'utf-16'");
        stored.StatusCode.ShouldBe(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task GoldenSetSurvivesRestart()
    {
        string directory;
        await using (ManagementServer first = await ManagementServer.StartAsync(versions: 1, separatePort: false))
        {
            directory = first.Store.RootDirectory;
            (await SendOkAsync(first, "PUT", "manage/v1/golden-set")).GetProperty("examples").GetInt32().ShouldBe(2);
        }

        await using ManagementServer second = await ManagementServer.StartAsync(versions: 0, separatePort: false, storeDirectory: directory);

        (await SendOkAsync(second, "GET", "manage/v1/golden-set")).GetProperty("examples").GetInt32().ShouldBe(2);
        GoldenSet.TryLoad(directory).ShouldNotBeNull().Examples.Count.ShouldBe(2);
    }

    [Fact]
    public async Task RollbackOnEmptyStoreExplains()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 0, separatePort: false);

        using HttpResponseMessage rollback = await server.Management.SendAsync(Request("POST", "manage/v1/rollback", ManagementServer.Token));

        rollback.StatusCode.ShouldBe(HttpStatusCode.Conflict);
        (await rollback.Content.ReadAsStringAsync()).ShouldContain("No version is live");
    }

    [Fact]
    public async Task ReplicaRejectsLearnerControlAndPins()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: false, extraArguments: "--Distribution:BootstrapServers=127.0.0.1:9");
        double conflictsBefore = ReliabilityMetrics.ManagementRequests.WithLabels("conflict").Value;

        using HttpResponseMessage pause = await server.Management.SendAsync(Request("POST", "manage/v1/learning/pause", ManagementServer.Token));
        using HttpResponseMessage golden = await server.Management.SendAsync(Request("PUT", "manage/v1/golden-set", ManagementServer.Token, body: "{\"examples\":[]}"));
        using HttpResponseMessage promote = await server.Management.SendAsync(Request("POST", "manage/v1/versions/1/promote", ManagementServer.Token));
        using HttpResponseMessage rollback = await server.Management.SendAsync(Request("POST", "manage/v1/rollback", ManagementServer.Token));
        using HttpResponseMessage unpin = await server.Management.SendAsync(Request("DELETE", "manage/v1/pin", ManagementServer.Token));
        using HttpResponseMessage versions = await server.Management.SendAsync(Request("GET", "manage/v1/versions", ManagementServer.Token));

        pause.StatusCode.ShouldBe(HttpStatusCode.Conflict);
        (await pause.Content.ReadAsStringAsync()).ShouldContain("replica");
        golden.StatusCode.ShouldBe(HttpStatusCode.Conflict);
        promote.StatusCode.ShouldBe(HttpStatusCode.Conflict);
        (await promote.Content.ReadAsStringAsync()).ShouldContain("pin");
        rollback.StatusCode.ShouldBe(HttpStatusCode.Conflict);
        unpin.StatusCode.ShouldBe(HttpStatusCode.Conflict);
        versions.StatusCode.ShouldBe(HttpStatusCode.OK);
        File.Exists(Path.Combine(server.Store.RootDirectory, "learning-paused")).ShouldBeFalse();
        File.Exists(Path.Combine(server.Store.RootDirectory, "pinned-version")).ShouldBeFalse();
        (ReliabilityMetrics.ManagementRequests.WithLabels("conflict").Value - conflictsBefore).ShouldBeGreaterThanOrEqualTo(5, "each 409 counts as a conflict");
    }

    [Fact]
    public async Task UnreadablePinIsReportedAndRemovable()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 2, separatePort: false);
        string pinFile = Path.Combine(server.Store.RootDirectory, "pinned-version");
        await File.WriteAllTextAsync(pinFile, "not-a-version");

        JsonElement listed = await SendOkAsync(server, "GET", "manage/v1/versions");
        JsonElement unpinned = await SendOkAsync(server, "DELETE", "manage/v1/pin");

        listed.GetProperty("pinned").ValueKind.ShouldBe(JsonValueKind.Null);
        listed.GetProperty("pinError").GetString().ShouldNotBeNull().ShouldContain("not-a-version");
        listed.GetProperty("versions").GetArrayLength().ShouldBe(2);
        unpinned.GetProperty("pinned").ValueKind.ShouldBe(JsonValueKind.Null);
        File.Exists(pinFile).ShouldBeFalse();
    }

    [Fact]
    public async Task SeparatePortKeepsManagementOffInference()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: true);

        using HttpResponseMessage onInference = await server.Inference.SendAsync(Request("GET", "manage/v1/versions", ManagementServer.Token));
        using HttpResponseMessage onManagement = await server.Management.SendAsync(Request("GET", "manage/v1/versions", ManagementServer.Token));
        using HttpResponseMessage health = await server.Inference.GetAsync("v2/health/ready");

        onInference.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        onManagement.StatusCode.ShouldBe(HttpStatusCode.OK);
        health.StatusCode.ShouldBe(HttpStatusCode.OK);
    }

    // The inference address is open to applications, so its 404 must not tell them where the management API is.
    [Fact]
    public async Task SeparatePortIsNotNamedOnInference()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: true);
        string managementPort = server.Management.BaseAddress!.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

        using HttpResponseMessage withoutToken = await server.Inference.GetAsync("manage/v1/versions");
        using HttpResponseMessage withToken = await server.Inference.SendAsync(Request("GET", "manage/v1/versions", ManagementServer.Token));

        withoutToken.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        (await withoutToken.Content.ReadAsStringAsync()).ShouldNotContain(managementPort);
        withToken.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        (await withToken.Content.ReadAsStringAsync()).ShouldNotContain(managementPort);
    }

    // Method, path, whether the request goes to the management port, the status, and the Allow header or null for none.
    public static TheoryData<string, string, bool, int, string?> SeparatePortMethods => new()
    {
        { "GET", "manage/v1/versions", false, 404, null },
        { "HEAD", "manage/v1/versions", false, 404, null },
        { "POST", "manage/v1/versions", false, 404, null },
        { "DELETE", "manage/v1/versions", false, 404, null },
        { "GET", "manage/v1/learning/pause", false, 404, null },
        { "POST", "manage/v1/learning/pause", false, 404, null },
        { "GET", "manage/v1/no-such-route", false, 404, null },
        { "GET", "manage/v1/versions", true, 200, null },
        { "HEAD", "manage/v1/versions", true, 200, null },
        { "POST", "manage/v1/versions", true, 405, "GET, HEAD" },
        { "DELETE", "manage/v1/versions", true, 405, "GET, HEAD" },
        { "GET", "manage/v1/learning/pause", true, 405, "POST" },
    };

    // A 405 lists the route's methods in Allow. So on the inference port every method on a management path must get
    // the same 404 as GET, which reveals neither that the route exists nor where the management API is.
    [Theory]
    [MemberData(nameof(SeparatePortMethods))]
    public async Task SeparatePortStatusPerMethod(string method, string path, bool onManagementPort, int status, string? allow)
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: true);
        HttpClient client = onManagementPort ? server.Management : server.Inference;
        string managementPort = server.Management.BaseAddress!.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

        using HttpResponseMessage response = await client.SendAsync(Request(method, path, ManagementServer.Token));
        string body = await response.Content.ReadAsStringAsync();

        ((int)response.StatusCode).ShouldBe(status, body);
        string.Join(", ", response.Content.Headers.Allow).ShouldBe(allow ?? "", "Allow header");
        response.Content.Headers.ContentType.ShouldNotBeNull().MediaType.ShouldBe("application/json");
        body.ShouldNotContain(managementPort);
        if (method == "HEAD")
        {
            body.ShouldBeEmpty();
            return;
        }

        if (status == 404)
        {
            ErrorMessage(body).ShouldBe($"No route matches /{path}. The management API is not served on this address.");
        }
        else if (status == 405)
        {
            ErrorMessage(body).ShouldEndWith($"Use {allow}.");
        }
    }

    // A client with a valid token that mistypes a management path needs the management routes, not the inference API's.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task UnknownManagementPathListsRoutes(bool separatePort)
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 1, separatePort: separatePort);

        using HttpResponseMessage response = await server.Management.SendAsync(Request("GET", "manage/v1/golden-sets", ManagementServer.Token));
        string message = ErrorMessage(await response.Content.ReadAsStringAsync()).ShouldNotBeNull();

        response.StatusCode.ShouldBe(HttpStatusCode.NotFound);
        message.ShouldStartWith("No route matches /manage/v1/golden-sets. The management API has these routes: ");
        message.ShouldContain("GET /manage/v1/versions; ");
        message.ShouldContain("GET, PUT, DELETE /manage/v1/golden-set.");
        message.ShouldContain("POST /manage/v1/rollback");
        message.ShouldContain("GET /openapi/v1.json");
        message.ShouldNotContain("HEAD");
        message.ShouldNotContain("/v2");
    }

    private static string? ErrorMessage(string body) => JsonDocument.Parse(body).RootElement.GetProperty("error").GetString();

    private static async Task<JsonElement> SendOkAsync(ManagementServer server, string method, string path)
    {
        using HttpResponseMessage response = await server.Management.SendAsync(Request(method, path, ManagementServer.Token));
        string body = await response.Content.ReadAsStringAsync();
        response.StatusCode.ShouldBe(HttpStatusCode.OK, $"{method} {path}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static HttpRequestMessage Request(string method, string path, string? token, bool basic = false, string? body = null)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
        else if (basic)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("admin:" + ManagementServer.Token)));
        }

        if (method == "PUT")
        {
            request.Content = new StringContent(body ?? GoldenSetJson(), Encoding.UTF8, "application/json");
        }

        return request;
    }

    private static string GoldenSetJson()
    {
        int features = RunningServer.Spec.FeatureCount;
        var set = new { examples = new[] { new { label = 0, features = new float[features] }, new { label = 2, features = Enumerable.Repeat(1f, features).ToArray() } } };
        return JsonSerializer.Serialize(set);
    }

    // Writes 512 spaces every 250 ms until cancelled or the server closes the connection.
    private static async Task TrickleSpacesAsync(NetworkStream stream, CancellationToken cancellation)
    {
        byte[] spaces = Encoding.ASCII.GetBytes(new string(' ', 512));
        try
        {
            while (true)
            {
                await stream.WriteAsync(spaces, cancellation);
                await Task.Delay(250, cancellation);
            }
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException)
        {
            // Cancelled by the test, or the server closed the connection.
        }
    }
}
