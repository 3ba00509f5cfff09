using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ContinualServe.Model.Store;
using ContinualServe.Server.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Management;

/// <summary>
/// Management requests that race with each other and with the learner: pin changes against published versions, and
/// promotes against retention. Each test runs a bounded number of rounds within a time limit.
/// </summary>
public sealed class ManagementRaceTests
{
    private const int Rounds = 40;
    private const int RetentionRounds = 200;
    private static readonly TimeSpan TimeLimit = TimeSpan.FromSeconds(60);

    // In the all role no store poller corrects the live version, so a race that leaves it different from the pin lasts
    // until the learner's next version.
    [Fact]
    public async Task ConcurrentPinChangesKeepLiveOnPin()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 5, separatePort: false);
        ModelSwapper swapper = server.App.Services.GetRequiredService<ModelSwapper>();
        server.Store.TryLoad(5, out ModelVersion? newest).ShouldBeTrue();
        var started = Stopwatch.StartNew();
        var mismatches = new List<string>();

        for (int round = 0; round < Rounds && started.Elapsed < TimeLimit; round++)
        {
            // The unpin makes version 5 live again, and the learner's publication of it races with the pin changes.
            (await SendAsync(server, "DELETE", "manage/v1/pin")).Dispose();
            Task<HttpResponseMessage> promoteOne = SendAsync(server, "POST", "manage/v1/versions/1/promote");
            Task<HttpResponseMessage> promoteThree = SendAsync(server, "POST", "manage/v1/versions/3/promote");
            Task<HttpResponseMessage> unpin = round % 2 == 0 ? SendAsync(server, "DELETE", "manage/v1/pin") : SendAsync(server, "POST", "manage/v1/rollback");
            Task publish = Task.Run(() => swapper.TrySwapToPublished(newest!));
            HttpResponseMessage[] responses = await Task.WhenAll(promoteOne, promoteThree, unpin);
            await publish;

            // A rollback that runs after the promote of version 1 has no older version and gets 409.
            foreach (HttpResponseMessage response in responses)
            {
                response.StatusCode.ShouldBeOneOf([HttpStatusCode.OK, HttpStatusCode.Conflict], await response.Content.ReadAsStringAsync());
                response.Dispose();
            }

            long? pinned = StoreControlFiles.ReadPinnedVersion(server.Store.RootDirectory);
            long? live = server.App.Services.GetLiveVersion();
            long expected = pinned ?? 5;
            if (live != expected)
            {
                mismatches.Add($"round {round}: pinned {pinned?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}, live {live}");
            }
        }

        mismatches.ShouldBeEmpty("the live version must be the pinned version, or the newest without a pin");
    }

    // The learner's store keeps the newest three versions here, so each save deletes the oldest one, which is the
    // version being promoted.
    [Fact]
    public async Task PromoteRacingRetentionKeepsPinLoadable()
    {
        await using ManagementServer server = await ManagementServer.StartAsync(versions: 3, separatePort: false);
        var learnerStore = new ModelStore(server.Store.RootDirectory, retainedVersions: 3);
        var started = Stopwatch.StartNew();
        var problems = new List<string>();

        for (int round = 0; round < RetentionRounds && started.Elapsed < TimeLimit; round++)
        {
            (await SendAsync(server, "DELETE", "manage/v1/pin")).Dispose();
            long oldest = learnerStore.ListVersionNumbers()[0];
            Task<HttpResponseMessage> promote = SendAsync(server, "POST", $"manage/v1/versions/{oldest}/promote");
            Task save = Task.Run(() => RunningServer.SaveVersion(learnerStore, 100 + round));
            using HttpResponseMessage response = await promote;
            await save;
            string body = await response.Content.ReadAsStringAsync();

            response.Content.Headers.ContentType?.MediaType.ShouldBe("application/json", body);
            JsonDocument.Parse(body).Dispose();
            long? pinned = StoreControlFiles.ReadPinnedVersion(server.Store.RootDirectory);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                if (pinned != oldest || !server.Store.TryLoad(oldest, out _))
                {
                    problems.Add($"round {round}: promote of {oldest} returned 200 but the pin is {pinned} and the version loads: {server.Store.TryLoad(oldest, out _)}");
                }
            }
            else if (response.StatusCode != HttpStatusCode.NotFound)
            {
                problems.Add($"round {round}: promote of {oldest} returned {(int)response.StatusCode}: {body}");
            }
            else if (pinned is not null)
            {
                problems.Add($"round {round}: promote of {oldest} returned 404 but left the pin {pinned}");
            }
        }

        problems.ShouldBeEmpty("a promote either pins a version that stays in the store or fails with 404 and no pin");
    }

    private static Task<HttpResponseMessage> SendAsync(ManagementServer server, string method, string path)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ManagementServer.Token);
        return server.Management.SendAsync(request);
    }
}
