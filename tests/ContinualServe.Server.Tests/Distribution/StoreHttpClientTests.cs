using System.Net;
using System.Security.Cryptography.X509Certificates;
using ContinualServe.Learner.Publishing;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Hosting;
using ContinualServe.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>
/// A replica's store client against an HTTPS server on 127.0.0.1 whose certificate signs itself, trusted through
/// Distribution:StoreCaFile, and the reason that a failed download logs.
/// </summary>
public sealed class StoreHttpClientTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-store-client-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact(Timeout = 30_000)]
    public async Task TrustsTheConfiguredAuthority()
    {
        using X509Certificate2 certificate = CreateSelfSigned(loopbackAddress: true);
        await using WebApplication app = await StartAsync(certificate, https: true);
        using HttpClient client = StoreHttpClient.Create(Options(certificate));

        string body = await client.GetStringAsync(new Uri(Address(app) + "/ok"));

        body.ShouldBe("ok");
    }

    // A private authority's certificates rarely name a revocation list, so a leaf that such an authority signed
    // must pass without one.
    [Fact(Timeout = 30_000)]
    public async Task TrustsLeafSignedByAuthority()
    {
        using X509Certificate2 authority = CreateSelfSigned(loopbackAddress: false);
        using X509Certificate2 leaf = TestCertificates.CreateSignedBy(authority);
        await using WebApplication app = await StartAsync(leaf, https: true);
        using HttpClient client = StoreHttpClient.Create(Options(authority));

        string body = await client.GetStringAsync(new Uri(Address(app) + "/ok"));

        body.ShouldBe("ok");
    }

    [Fact(Timeout = 30_000)]
    public async Task CertificateForAnotherHostNamesTheMismatch()
    {
        using X509Certificate2 certificate = CreateSelfSigned(loopbackAddress: false);
        await using WebApplication app = await StartAsync(certificate, https: true);
        using HttpClient client = StoreHttpClient.Create(Options(certificate));

        HttpRequestException exception = await Should.ThrowAsync<HttpRequestException>(
            () => client.GetStringAsync(new Uri(Address(app) + "/ok")));

        string reason = ModelVersionSubscriber.DescribeFailure(exception);
        reason.ShouldStartWith("The SSL connection could not be established: ");
        reason.ShouldContain("RemoteCertificateNameMismatch");
        reason.ShouldNotContain("see inner exception");
    }

    [Fact(Timeout = 30_000)]
    public async Task PlainHttpStoreIgnoresTheAuthorityFile()
    {
        using X509Certificate2 certificate = CreateSelfSigned(loopbackAddress: true);
        await using WebApplication app = await StartAsync(certificate, https: false);
        using HttpClient client = StoreHttpClient.Create(Options(certificate));

        string body = await client.GetStringAsync(new Uri(Address(app) + "/ok"));

        body.ShouldBe("ok");
    }

    [Fact]
    public void AuthorityDirectoryIsRejected()
    {
        InvalidConfigurationException exception = Should.Throw<InvalidConfigurationException>(() => StoreHttpClient.LoadAuthorities(directory));

        exception.Message.ShouldStartWith($"The store's certificate authority file {directory} is a directory.");
    }

    [Fact]
    public void AuthorityFileWithTextAroundCertificates()
    {
        using X509Certificate2 certificate = CreateSelfSigned(loopbackAddress: true);
        string file = Path.Combine(directory, "bundle.pem");
        File.WriteAllText(file, "# private authority\n" + certificate.ExportCertificatePem() + "\ntrailing notes\n");

        X509Certificate2Collection authorities = StoreHttpClient.LoadAuthorities(file);

        authorities.Count.ShouldBe(1);
        authorities[0].Thumbprint.ShouldBe(certificate.Thumbprint);
    }

    [Fact]
    public void DescribeFailureSkipsRepeatedMessages()
    {
        var exception = new HttpRequestException("Connection refused (127.0.0.1:9)", new IOException("Connection refused"));

        ModelVersionSubscriber.DescribeFailure(exception).ShouldBe("Connection refused (127.0.0.1:9)");
    }

    private DistributionOptions Options(X509Certificate2 authority)
    {
        string file = Path.Combine(directory, "authorities.pem");
        File.WriteAllText(file, authority.ExportCertificatePem());
        return new DistributionOptions { StoreCaFile = file, DownloadTimeout = TimeSpan.FromSeconds(10) };
    }

    // A certificate that is its own authority, issued for 127.0.0.1 or only for another host name.
    private static X509Certificate2 CreateSelfSigned(bool loopbackAddress) =>
        TestCertificates.CreateServerAuthority("continualserve-test-store", loopbackAddress);

    private static async Task<WebApplication> StartAsync(X509Certificate2 certificate, bool https)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            if (https)
            {
                listen.UseHttps(certificate);
            }
        }));
        builder.Logging.ClearProviders();
        WebApplication app = builder.Build();
        app.MapGet("/ok", () => "ok");
        await app.StartAsync();
        return app;
    }

    private static string Address(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
}
