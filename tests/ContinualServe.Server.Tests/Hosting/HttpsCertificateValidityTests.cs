using System.Security.Cryptography.X509Certificates;
using ContinualServe.Server.Hosting;
using ContinualServe.Tests.Shared;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Hosting;

public sealed class HttpsCertificateValidityTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-https-validity-").FullName;
    private readonly LogRecorder<HttpsCertificateValidityTests> logger = new(LogLevel.Trace);

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public void ExpiredPemCertificateLogsWarning()
    {
        string path = WritePem(Now.AddDays(-30), Now.AddDays(-1));

        HttpsCertificateValidity.CheckConfiguredCertificates(Configuration(path), logger, Now);

        (LogLevel level, int eventId, string message) = logger.Entries.ShouldHaveSingleItem();
        level.ShouldBe(LogLevel.Warning);
        eventId.ShouldBe(422);
        message.ShouldContain(path);
        message.ShouldContain("2026-05-31 12:00:00Z, so clients reject it");
        message.ShouldContain("Kestrel:Certificates:Default:Path");
    }

    [Fact]
    public void ExpiredPfxCertificateLogsWarning()
    {
        using X509Certificate2 certificate = Create(Now.AddDays(-30), Now.AddDays(-1));
        string path = Path.Combine(directory, "server.pfx");
        File.WriteAllBytes(path, certificate.Export(X509ContentType.Pfx, "right"));

        HttpsCertificateValidity.CheckConfiguredCertificates(Configuration(path, password: "right"), logger, Now);

        logger.Entries.ShouldHaveSingleItem().EventId.ShouldBe(422);
    }

    [Fact]
    public void NotYetValidCertificateLogsWarning()
    {
        string path = WritePem(Now.AddDays(1), Now.AddDays(30));

        HttpsCertificateValidity.CheckConfiguredCertificates(Configuration(path), logger, Now);

        logger.Entries.ShouldHaveSingleItem().EventId.ShouldBe(422);
    }

    [Fact]
    public void ValidCertificateLogsNothing()
    {
        string path = WritePem(Now.AddDays(-1), Now.AddDays(30));

        HttpsCertificateValidity.CheckConfiguredCertificates(Configuration(path), logger, Now);

        logger.Entries.ShouldBeEmpty();
    }

    [Fact]
    public void UnreadableFilesAreLeftToKestrel()
    {
        string garbage = Path.Combine(directory, "garbage.pem");
        File.WriteAllText(garbage, "not a certificate\n");

        HttpsCertificateValidity.CheckConfiguredCertificates(Configuration(garbage), logger, Now);
        HttpsCertificateValidity.CheckConfiguredCertificates(Configuration(Path.Combine(directory, "absent.pem")), logger, Now);
        HttpsCertificateValidity.CheckConfiguredCertificates(new ConfigurationBuilder().Build(), logger, Now);

        logger.Entries.ShouldBeEmpty();
    }

    [Fact]
    public void ExpiredEndpointCertificateLogsWarning()
    {
        string path = WritePem(Now.AddDays(-30), Now.AddDays(-1));
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Secure:Url"] = "https://127.0.0.1:0",
            ["Kestrel:Endpoints:Secure:Certificate:Path"] = path,
        }).Build();

        HttpsCertificateValidity.CheckConfiguredCertificates(configuration, logger, Now);

        (_, int eventId, string message) = logger.Entries.ShouldHaveSingleItem();
        eventId.ShouldBe(422);
        message.ShouldContain("Kestrel:Endpoints:Secure:Certificate:Path");
    }

    [Theory]
    [InlineData("Kestrel:Certificates:Default:Path")]
    [InlineData("Kestrel:Certificates:Default:KeyPath")]
    [InlineData("Kestrel:Endpoints:Secure:Certificate:KeyPath")]
    public void DirectoryPathStopsStart(string key)
    {
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            [key] = directory,
        }).Build();

        InvalidConfigurationException exception = Should.Throw<InvalidConfigurationException>(
            () => HttpsCertificateValidity.CheckConfiguredCertificates(configuration, logger, Now));

        exception.Message.ShouldStartWith($"{key} names {directory}, which is a directory.");
    }

    private static IConfiguration Configuration(string path, string? password = null) =>
        new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Kestrel:Certificates:Default:Path"] = path,
            ["Kestrel:Certificates:Default:Password"] = password,
        }).Build();

    private static X509Certificate2 Create(DateTimeOffset notBefore, DateTimeOffset notAfter) =>
        TestCertificates.CreateSelfSigned("continualserve-test", notBefore, notAfter);

    private string WritePem(DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        using X509Certificate2 certificate = Create(notBefore, notAfter);
        string path = Path.Combine(directory, "server.crt");
        File.WriteAllText(path, certificate.ExportCertificatePem());
        return path;
    }
}
