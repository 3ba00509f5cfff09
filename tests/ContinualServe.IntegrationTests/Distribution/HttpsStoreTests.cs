using System.Security.Cryptography.X509Certificates;
using ContinualServe.Learner.Kafka;
using ContinualServe.Tests.Shared;
using Shouldly;
using Xunit;

namespace ContinualServe.IntegrationTests.Distribution;

/// <summary>
/// A learner that serves its model store over HTTPS with a certificate of its own authority, and replicas that
/// download from it: one trusts that authority through Distribution:StoreCaFile, the other only the system's.
/// </summary>
public sealed class HttpsStoreTests
{
    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(60);

    [Fact(Timeout = 150_000)]
    public async Task ReplicaTrustsTheConfiguredAuthorityOnly()
    {
        using var temporary = new TemporaryDirectory();
        (string certificate, string key) = WriteSelfSignedCertificate(temporary.Path);
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("fashion-mnist", 1);
        broker.CreateTopic("fashion-mnist.dlq", 1);
        broker.CreateTopic("model-versions", 1);

        (ContinualServeProcess started, string storeUrl) = await ContinualServeProcess.StartOnFreePortAsync("learner", temporary.Path, "https", url =>
        [
            "learn", "--urls", url, "--store-url", url, "--bootstrap-servers", broker.BootstrapServers,
            "--store", Path.Combine(temporary.Path, "learner"), "--device", "cpu",
            "--Kestrel:Certificates:Default:Path=" + certificate, "--Kestrel:Certificates:Default:KeyPath=" + key,
        ]);
        await using ContinualServeProcess learner = started;
        await using ContinualServeProcess trusting = StartReplica(temporary.Path, "trusting", broker.BootstrapServers, "--Distribution:StoreCaFile=" + certificate);
        await using ContinualServeProcess untrusting = StartReplica(temporary.Path, "untrusting", broker.BootstrapServers);

        await WaitForOutputAsync(trusting, "Downloaded and verified version 1");
        await WaitForOutputAsync(untrusting, "Download of version 1 from " + storeUrl + " failed (attempt 2)");

        untrusting.OutputTail.ShouldContain("The SSL connection could not be established");
        untrusting.OutputTail.ShouldNotContain("Downloaded and verified version 1");
        learner.HasExited.ShouldBeFalse(learner.OutputTail);
        using var client = new HttpClient();
        (await client.GetAsync(new Uri(storeUrl.Replace("https", "http", StringComparison.Ordinal) + "/v2/health/live")).ContinueWith(task => task.IsFaulted))
            .ShouldBeTrue("the learner must listen on HTTPS only");
    }

    private static ContinualServeProcess StartReplica(string root, string name, string bootstrapServers, params string[] extra) =>
        ContinualServeProcess.Start(name, root,
        [
            "serve", "--urls", "http://127.0.0.1:0", "--store", Path.Combine(root, name), "--device", "cpu",
            "--bootstrap-servers", bootstrapServers, "--Distribution:RetryDelay=00:00:00.200", "--Distribution:MaxRetryDelay=00:00:01",
            .. extra,
        ]);

    private static async Task WaitForOutputAsync(ContinualServeProcess process, string text)
    {
        DateTime deadline = DateTime.UtcNow + WaitLimit;
        while (!process.OutputTail.Contains(text, StringComparison.Ordinal))
        {
            process.HasExited.ShouldBeFalse($"{process.Name} exited: {process.OutputTail}");
            DateTime.UtcNow.ShouldBeLessThan(deadline, $"{process.Name} did not write '{text}': {process.OutputTail}");
            await Task.Delay(200);
        }
    }

    // A certificate for 127.0.0.1 that signs itself, so that it is its own authority.
    private static (string Certificate, string Key) WriteSelfSignedCertificate(string directory)
    {
        using X509Certificate2 certificate = TestCertificates.CreateServerAuthority("continualserve-test-learner", loopbackAddress: true);
        return TestCertificates.WritePemFiles(certificate, directory, "learner");
    }
}
