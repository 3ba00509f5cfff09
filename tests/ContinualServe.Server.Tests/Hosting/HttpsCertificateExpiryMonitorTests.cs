using System.Security.Cryptography.X509Certificates;
using ContinualServe.Model.Telemetry;
using ContinualServe.Server.Hosting;
using ContinualServe.Tests.Shared;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Hosting;

public sealed class HttpsCertificateExpiryMonitorTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-https-expiry-").FullName;
    private readonly LogRecorder<HttpsCertificateExpiryMonitor> logger = new(LogLevel.Trace);

    // The gauge is process-wide, so each test names its own endpoint and reads only its own series.
    private readonly string endpoint = "Expiry" + Guid.NewGuid().ToString("N");

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private string Setting => $"Kestrel:Endpoints:{endpoint}:Certificate:Path";

    [Fact]
    public void SoonExpiryIsExportedAndLoggedOnce()
    {
        DateTimeOffset notAfter = Now.AddDays(5);
        HttpsCertificateExpiryMonitor monitor = Monitor(WritePem("server.crt", Now.AddDays(-60), notAfter));

        monitor.Check(Now);
        monitor.Check(Now.AddHours(1));

        ReliabilityMetrics.HttpsCertificateExpiry.WithLabels(Setting).Value.ShouldBe(notAfter.ToUnixTimeSeconds());
        (LogLevel level, int eventId, string message) = logger.Entries.ShouldHaveSingleItem();
        level.ShouldBe(LogLevel.Warning);
        eventId.ShouldBe(423);
        message.ShouldContain("expires at 2026-06-06 12:00:00Z, in 5.0 days");
        message.ShouldContain(Setting);
    }

    [Fact]
    public void CertificateFarFromExpiryLogsNothing()
    {
        HttpsCertificateExpiryMonitor monitor = Monitor(WritePem("server.crt", Now.AddDays(-1), Now.AddDays(90)));

        monitor.Check(Now);

        logger.Entries.ShouldBeEmpty();
        ReliabilityMetrics.HttpsCertificateExpiry.WithLabels(Setting).Value.ShouldBe(Now.AddDays(90).ToUnixTimeSeconds());
    }

    [Fact]
    public void ExpiryWhileRunningLogsWarningOnce()
    {
        HttpsCertificateExpiryMonitor monitor = Monitor(WritePem("server.crt", Now.AddDays(-60), Now.AddDays(20)));
        monitor.Check(Now);
        logger.Entries.ShouldBeEmpty();

        monitor.Check(Now.AddDays(21));
        monitor.Check(Now.AddDays(22));

        // 423 was never due at a check before the expiry, so the one entry is the expiry itself.
        (_, int eventId, string message) = logger.Entries.ShouldHaveSingleItem();
        eventId.ShouldBe(422);
        message.ShouldContain("so clients reject it");
        message.ShouldContain(Setting);
    }

    [Fact]
    public void ExpiredAtStartLogsNothing()
    {
        HttpsCertificateExpiryMonitor monitor = Monitor(WritePem("server.crt", Now.AddDays(-60), Now.AddDays(-1)));

        monitor.Check(Now);
        monitor.Check(Now.AddMinutes(1));

        logger.Entries.ShouldBeEmpty();
        ReliabilityMetrics.HttpsCertificateExpiry.WithLabels(Setting).Value.ShouldBe(Now.AddDays(-1).ToUnixTimeSeconds());
    }

    [Fact]
    public void RenewedCertificateIsReadAgain()
    {
        string path = WritePem("server.crt", Now.AddDays(-60), Now.AddDays(3));
        HttpsCertificateExpiryMonitor monitor = Monitor(path);
        monitor.Check(Now);

        WritePem("server.crt", Now.AddDays(-1), Now.AddDays(10));
        monitor.Check(Now.AddMinutes(1));

        ReliabilityMetrics.HttpsCertificateExpiry.WithLabels(Setting).Value.ShouldBe(Now.AddDays(10).ToUnixTimeSeconds());
        logger.Entries.Select(entry => entry.EventId).ShouldBe([423, 423]);
        logger.Entries[1].Message.ShouldContain("in 10.0 days");
    }

    [Fact]
    public void RelativePathFollowsContentRoot()
    {
        WritePem("server.crt", Now.AddDays(-1), Now.AddDays(2));
        HttpsCertificateExpiryMonitor monitor = Monitor("server.crt");

        monitor.Check(Now);

        logger.Entries.ShouldHaveSingleItem().EventId.ShouldBe(423);
    }

    [Fact]
    public void UnreadableFileKeepsLastValue()
    {
        string path = WritePem("server.crt", Now.AddDays(-1), Now.AddDays(30));
        HttpsCertificateExpiryMonitor monitor = Monitor(path);
        monitor.Check(Now);

        File.WriteAllText(path, "not a certificate\n");
        monitor.Check(Now.AddMinutes(1));
        File.Delete(path);
        monitor.Check(Now.AddMinutes(2));

        ReliabilityMetrics.HttpsCertificateExpiry.WithLabels(Setting).Value.ShouldBe(Now.AddDays(30).ToUnixTimeSeconds());
        logger.Entries.ShouldBeEmpty();
    }

    [Fact]
    public void MonitorRunsOnlyWithCertificateFiles()
    {
        HttpsCertificateExpiryMonitor.HasCertificateFiles(new ConfigurationBuilder().Build()).ShouldBeFalse();
        HttpsCertificateExpiryMonitor.HasCertificateFiles(Configuration("server.crt")).ShouldBeTrue();
    }

    private HttpsCertificateExpiryMonitor Monitor(string path) =>
        new(Configuration(path), new HostingEnvironment { ContentRootPath = directory }, TimeProvider.System, logger);

    private IConfiguration Configuration(string path) =>
        new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            [$"Kestrel:Endpoints:{endpoint}:Url"] = "https://127.0.0.1:0",
            [Setting] = path,
        }).Build();

    private string WritePem(string name, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        using X509Certificate2 certificate = TestCertificates.CreateSelfSigned("continualserve-test", notBefore, notAfter);
        string path = Path.Combine(directory, name);
        File.WriteAllText(path, certificate.ExportCertificatePem());
        return path;
    }
}
