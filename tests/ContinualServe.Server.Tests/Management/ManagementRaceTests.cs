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
/// Management requests that race with each other and with the learner's published versions. Each test runs a bounded
/// number of rounds within a time limit.
/// </summary>
public sealed class ManagementRaceTests
{
    private const int Rounds = 40;
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

    private static Task<HttpResponseMessage> SendAsync(ManagementServer server, string method, string path)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ManagementServer.Token);
        return server.Management.SendAsync(request);
    }
}
