using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ContinualServe.Learner.Kafka;
using ContinualServe.Server.Cli;
using ContinualServe.Server.Hosting;
using ContinualServe.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Hosting;

/// <summary>
/// A server on https://127.0.0.1 whose Kestrel:Certificates:Default files are replaced while it runs, as cert-manager
/// and the kubelet replace a mounted kubernetes.io/tls Secret. Each check opens a new TLS connection without session
/// resumption and compares the certificate that the server sends.
/// </summary>
public sealed class CertificateReloadTests : IAsyncLifetime
{
    private static readonly TimeSpan ReloadTimeout = TimeSpan.FromSeconds(20);

    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-certificate-reload-").FullName;
    private readonly LogRecorder<CertificateReloadTests> logs = new(LogLevel.Warning);
    private readonly HashSet<string> testThumbprints = [];
    private WebApplication? app;
    private Uri? address;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (app is not null)
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }

        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task OverwrittenFilesAreServed()
    {
        using X509Certificate2 first = CreateCertificate("first.example");
        using X509Certificate2 renewed = CreateCertificate("renewed.example");
        (string certificatePath, string keyPath) = TestCertificates.WritePemFiles(first, directory, "tls");
        await StartAsync(certificatePath, keyPath);
        (await ServedThumbprintAsync()).ShouldBe(Thumbprint(first));

        TestCertificates.WritePemFiles(renewed, directory, "tls");

        (await WaitForServedAsync(Thumbprint(renewed))).ShouldBe(Thumbprint(renewed));
    }

    [Fact]
    public async Task SwappedSecretVolumeIsServed()
    {
        using X509Certificate2 first = CreateCertificate("first.example");
        using X509Certificate2 renewed = CreateCertificate("renewed.example");
        var volume = new SecretVolume(directory);
        volume.Write(first);
        await StartAsync(volume.CertificatePath, volume.KeyPath);
        (await ServedThumbprintAsync()).ShouldBe(Thumbprint(first));

        volume.Write(renewed);

        (await WaitForServedAsync(Thumbprint(renewed))).ShouldBe(Thumbprint(renewed));
    }

    // The learn role builds a host of its own, which replicas reach for versions over HTTPS.
    [Fact]
    public async Task LearnRoleServesRenewedCertificate()
    {
        using X509Certificate2 first = CreateCertificate("first.example");
        using X509Certificate2 renewed = CreateCertificate("renewed.example");
        (string certificatePath, string keyPath) = TestCertificates.WritePemFiles(first, directory, "tls");
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic("fashion-mnist", 1);
        broker.CreateTopic("model-versions", 1);
        await StartAsync(LearnCommand.Build([
            "--urls", "https://127.0.0.1:0",
            "--Logging:LogLevel:Default=Warning",
            $"--Kestrel:Certificates:Default:Path={certificatePath}",
            $"--Kestrel:Certificates:Default:KeyPath={keyPath}",
            "--Learner:BootstrapServers=" + broker.BootstrapServers,
            "--Learner:StoreDirectory=" + Path.Combine(directory, "store"),
            "--Learner:Device=cpu",
            "--Learner:SessionTimeout=00:00:03",
        ]));
        (await ServedThumbprintAsync()).ShouldBe(Thumbprint(first));

        TestCertificates.WritePemFiles(renewed, directory, "tls");
        string served = await WaitForServedAsync(Thumbprint(renewed));

        // The learner's host stops before the broker it reads from is disposed at the end of this method.
        await app!.StopAsync();
        await app.DisposeAsync();
        app = null;

        served.ShouldBe(Thumbprint(renewed));
    }

    // Kestrel reads relative certificate paths from the content root, which --contentRoot may set to another directory
    // than the working directory. The reload must read the same files.
    [Fact]
    public async Task RelativePathsFollowContentRoot()
    {
        using X509Certificate2 first = CreateCertificate("first.example");
        using X509Certificate2 renewed = CreateCertificate("renewed.example");
        TestCertificates.WritePemFiles(first, directory, "tls");
        await StartAsync("tls.crt", "tls.key", "https://127.0.0.1:0", $"--contentRoot={directory}");
        (await ServedThumbprintAsync()).ShouldBe(Thumbprint(first));

        TestCertificates.WritePemFiles(renewed, directory, "tls");

        (await WaitForServedAsync(Thumbprint(renewed))).ShouldBe(Thumbprint(renewed));
    }

    [Fact]
    public async Task InvalidRenewalKeepsOldCertificate()
    {
        using X509Certificate2 first = CreateCertificate("first.example");
        using X509Certificate2 other = CreateCertificate("other.example");
        using X509Certificate2 renewed = CreateCertificate("renewed.example");
        var volume = new SecretVolume(directory);
        volume.Write(first);
        await StartAsync(volume.CertificatePath, volume.KeyPath);

        // A certificate with the key of another certificate, which no TLS handshake can use.
        using (RSA otherKey = other.GetRSAPrivateKey()!)
        {
            volume.Write(renewed.ExportCertificatePem(), otherKey.ExportPkcs8PrivateKeyPem());
        }

        // Long enough for at least one check of the files, and for a second one that must not log again.
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < (2 * ReloadingServerCertificate.CheckInterval) + TimeSpan.FromSeconds(1))
        {
            (await ServedThumbprintAsync()).ShouldBe(Thumbprint(first));
            await Task.Delay(TimeSpan.FromMilliseconds(200));
        }

        var warnings = logs.Entries.Where(entry => entry.EventId == 493).ToList();
        warnings.Count.ShouldBe(1, string.Join('\n', logs.Entries.Select(entry => entry.Message)));
        warnings[0].Level.ShouldBe(LogLevel.Warning);
        warnings[0].Message.ShouldContain(volume.CertificatePath);

        volume.Write(renewed);

        (await WaitForServedAsync(Thumbprint(renewed))).ShouldBe(Thumbprint(renewed));
    }

    [Fact]
    public async Task DeletedFilesKeepOldCertificate()
    {
        using X509Certificate2 first = CreateCertificate("first.example");
        (string certificatePath, string keyPath) = TestCertificates.WritePemFiles(first, directory, "tls");
        await StartAsync(certificatePath, keyPath);

        File.Delete(certificatePath);
        File.Delete(keyPath);

        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < (2 * ReloadingServerCertificate.CheckInterval) + TimeSpan.FromSeconds(1))
        {
            (await ServedThumbprintAsync()).ShouldBe(Thumbprint(first));
            await Task.Delay(TimeSpan.FromMilliseconds(200));
        }

        logs.Entries.Count(entry => entry.EventId == 493).ShouldBe(1, string.Join('\n', logs.Entries.Select(entry => entry.Message)));
    }

    [Fact]
    public async Task EndpointCertificateIsNotReplaced()
    {
        using X509Certificate2 defaultCertificate = CreateCertificate("default.example");
        using X509Certificate2 endpointCertificate = CreateCertificate("endpoint.example");
        (string defaultPath, string defaultKeyPath) = TestCertificates.WritePemFiles(defaultCertificate, directory, "default");
        (string endpointPath, string endpointKeyPath) = TestCertificates.WritePemFiles(endpointCertificate, directory, "endpoint");

        await StartAsync(
            defaultPath,
            defaultKeyPath,
            "",
            "--Kestrel:Endpoints:Main:Url=https://127.0.0.1:0",
            $"--Kestrel:Endpoints:Main:Certificate:Path={endpointPath}",
            $"--Kestrel:Endpoints:Main:Certificate:KeyPath={endpointKeyPath}");

        (await ServedThumbprintAsync()).ShouldBe(Thumbprint(endpointCertificate));
    }

    // The selector stays off where an endpoint sets its own certificate, and Kestrel then watches that certificate's
    // files itself and binds the endpoint again when they change. The docs and event 495 rely on this, so a .NET
    // release that stops doing it fails here. The port is fixed because a rebound port 0 would get another port.
    [Fact]
    public async Task KestrelReloadsEndpointCertificate()
    {
        using X509Certificate2 defaultCertificate = CreateCertificate("default.example");
        using X509Certificate2 endpointCertificate = CreateCertificate("endpoint.example");
        using X509Certificate2 renewed = CreateCertificate("renewed.example");
        (string defaultPath, string defaultKeyPath) = TestCertificates.WritePemFiles(defaultCertificate, directory, "default");
        (string endpointPath, string endpointKeyPath) = TestCertificates.WritePemFiles(endpointCertificate, directory, "endpoint");

        await StartAsync(
            defaultPath,
            defaultKeyPath,
            "",
            $"--Kestrel:Endpoints:Main:Url=https://127.0.0.1:{FreePort()}",
            $"--Kestrel:Endpoints:Main:Certificate:Path={endpointPath}",
            $"--Kestrel:Endpoints:Main:Certificate:KeyPath={endpointKeyPath}");

        (await ServedThumbprintAsync()).ShouldBe(Thumbprint(endpointCertificate));
        TestCertificates.WritePemFiles(renewed, directory, "endpoint");
        (await WaitForServedAsync(Thumbprint(renewed))).ShouldBe(Thumbprint(renewed));
    }

    [Fact]
    public async Task MetricsExportCertificateExpiry()
    {
        using X509Certificate2 certificate = CreateCertificate("expiry.example");
        (string certificatePath, string keyPath) = TestCertificates.WritePemFiles(certificate, directory, "tls");
        await StartAsync(certificatePath, keyPath);
        using var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, served, _, _) =>
                served is not null && testThumbprints.Contains(served.GetCertHashString(HashAlgorithmName.SHA256)),
        };
        using var client = new HttpClient(handler) { BaseAddress = address, Timeout = TimeSpan.FromSeconds(10) };
        const string series = "continualserve_https_certificate_expiry_timestamp_seconds{setting=\"Kestrel:Certificates:Default:Path\"} ";

        // The monitor's first read runs just after the start, so the series may be missing from the first scrape.
        var watch = Stopwatch.StartNew();
        string? line = null;
        while (line is null && watch.Elapsed < ReloadTimeout)
        {
            line = (await client.GetStringAsync("metrics")).Split('\n').FirstOrDefault(entry => entry.StartsWith(series, StringComparison.Ordinal));
            if (line is null)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100));
            }
        }

        line.ShouldNotBeNull();
        double.Parse(line[series.Length..], System.Globalization.CultureInfo.InvariantCulture)
            .ShouldBe(new DateTimeOffset(certificate.NotAfter.ToUniversalTime()).ToUnixTimeSeconds());
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private async Task StartAsync(string certificatePath, string keyPath, string urls = "https://127.0.0.1:0", params string[] arguments)
    {
        string storeDirectory = Path.Combine(directory, "store");
        await StartAsync(ServerHost.Build(
            [
                "--Logging:LogLevel:Default=Warning",
                $"--Kestrel:Certificates:Default:Path={certificatePath}",
                $"--Kestrel:Certificates:Default:KeyPath={keyPath}",
                .. arguments,
            ],
            urls,
            options =>
            {
                options.ModelName = "test-model";
                options.StoreDirectory = storeDirectory;
            },
            pollStore: false,
            configureBuilder: builder => builder.Logging.AddProvider(new RecordingLoggerProvider(logs))));
    }

    // Starts the built host and keeps it, with the address it bound, for the checks and for DisposeAsync.
    private async Task StartAsync(WebApplication built)
    {
        app = built;
        await app.StartAsync();
        string bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        address = new Uri(bound);
    }

    // Polls with new connections until the server sends the certificate with expectedThumbprint or ReloadTimeout
    // passes, and returns the last thumbprint seen. Kestrel rebinds an endpoint whose own certificate changed, so a
    // connection made while the address is unbound is refused, and the poll goes on.
    private async Task<string> WaitForServedAsync(string expectedThumbprint)
    {
        var watch = Stopwatch.StartNew();
        string served = await TryServedThumbprintAsync();
        while (served != expectedThumbprint && watch.Elapsed < ReloadTimeout)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(200));
            served = await TryServedThumbprintAsync();
        }

        return served;
    }

    // While Kestrel binds an endpoint again, a connection to it can be refused, or reset before or during the handshake.
    private async Task<string> TryServedThumbprintAsync()
    {
        try
        {
            return await ServedThumbprintAsync();
        }
        catch (SocketException exception) when (exception.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset)
        {
            return "connection failed: " + exception.SocketErrorCode;
        }
        catch (IOException exception)
        {
            return "handshake failed: " + exception.Message;
        }
    }

    private async Task<string> ServedThumbprintAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = new TcpClient();
        await client.ConnectAsync(address!.Host, address.Port, timeout.Token);
        await using var tls = new SslStream(client.GetStream(), leaveInnerStreamOpen: false);
        await tls.AuthenticateAsClientAsync(
            new SslClientAuthenticationOptions
            {
                TargetHost = "127.0.0.1",
                AllowTlsResume = false,
                // The test certificates sign themselves, so the check is that the server sends one of them.
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                    certificate is not null && testThumbprints.Contains(certificate.GetCertHashString(HashAlgorithmName.SHA256)),
            },
            timeout.Token);
        using var served = new X509Certificate2(tls.RemoteCertificate!);
        return Thumbprint(served);
    }

    private X509Certificate2 CreateCertificate(string subjectName)
    {
        X509Certificate2 certificate = TestCertificates.CreateSelfSigned(subjectName);
        testThumbprints.Add(Thumbprint(certificate));
        return certificate;
    }

    private static string Thumbprint(X509Certificate2 certificate) => certificate.GetCertHashString(HashAlgorithmName.SHA256);

    /// <summary>
    /// Directory laid out as the kubelet lays out a Secret volume: tls.crt and tls.key are links into ..data, a link to a
    /// timestamped directory, and an update replaces ..data in one rename.
    /// </summary>
    private sealed class SecretVolume(string root)
    {
        private int generation;

        public string CertificatePath { get; } = Path.Combine(root, "tls.crt");

        public string KeyPath { get; } = Path.Combine(root, "tls.key");

        public void Write(X509Certificate2 certificate)
        {
            using RSA key = certificate.GetRSAPrivateKey()!;
            Write(certificate.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
        }

        public void Write(string certificatePem, string keyPem)
        {
            generation++;
            string version = Path.Combine(root, $"..version_{generation}");
            Directory.CreateDirectory(version);
            File.WriteAllText(Path.Combine(version, "tls.crt"), certificatePem);
            File.WriteAllText(Path.Combine(version, "tls.key"), keyPem);

            string data = Path.Combine(root, "..data");
            string temporary = Path.Combine(root, "..data_tmp");
            File.CreateSymbolicLink(temporary, Path.GetFileName(version));

            // rename(2) replaces the link ..data itself. File.Move and Directory.Move follow links or refuse an existing target.
            if (Rename(temporary, data) != 0)
            {
                throw new IOException($"rename {temporary} to {data} failed with errno {Marshal.GetLastPInvokeError()}.");
            }
            if (!File.Exists(CertificatePath))
            {
                File.CreateSymbolicLink(CertificatePath, Path.Combine("..data", "tls.crt"));
                File.CreateSymbolicLink(KeyPath, Path.Combine("..data", "tls.key"));
            }

            if (generation > 1)
            {
                Directory.Delete(Path.Combine(root, $"..version_{generation - 1}"), recursive: true);
            }
        }
    }

    [DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    private static extern int Rename([MarshalAs(UnmanagedType.LPUTF8Str)] string oldPath, [MarshalAs(UnmanagedType.LPUTF8Str)] string newPath);

    private sealed class RecordingLoggerProvider(LogRecorder<CertificateReloadTests> recorder) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => recorder;

        public void Dispose()
        {
        }
    }
}
