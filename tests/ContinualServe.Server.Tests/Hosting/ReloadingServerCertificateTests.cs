using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ContinualServe.Server.Hosting;
using ContinualServe.Tests.Shared;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Hosting;

/// <summary>
/// The certificate selector that Kestrel calls during each TLS handshake, checked without a server. A key file that is a
/// named pipe without a writer blocks every read of it, as a hung network mount would.
/// </summary>
public sealed class ReloadingServerCertificateTests : IDisposable
{
    private static readonly TimeSpan SelectTimeout = TimeSpan.FromSeconds(2);

    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-certificate-select-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    // Select runs inside the handshake, so a slow or hung read of the files must delay the renewal, not the handshake.
    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task BlockedFileReadDoesNotBlockSelect()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        using X509Certificate2 first = TestCertificates.CreateSelfSigned("first.example");
        using X509Certificate2 renewed = TestCertificates.CreateSelfSigned("renewed.example");
        (string certificatePath, string keyPath) = TestCertificates.WritePemFiles(first, directory, "tls");
        using var reloading = new ReloadingServerCertificate(certificatePath, keyPath, null, TimeProvider.System, NullLogger.Instance);
        using RSA renewedKey = renewed.GetRSAPrivateKey()!;
        File.WriteAllText(certificatePath, renewed.ExportCertificatePem());
        File.Delete(keyPath);
        MakeFifo(keyPath).ShouldBe(0, $"mkfifo {keyPath} failed with errno {Marshal.GetLastPInvokeError()}");

        // Past the check interval, so that a check of the changed files is due and reads the pipe.
        await Task.Delay(ReloadingServerCertificate.CheckInterval + TimeSpan.FromSeconds(1));
        Task<X509Certificate2> selecting = Task.Run(reloading.Select);
        bool returned = await Task.WhenAny(selecting, Task.Delay(SelectTimeout)) == selecting;

        // A writer ends the blocked read, so the renewed pair loads and no thread stays blocked after the test.
        Task writing = Task.Run(() => File.WriteAllText(keyPath, renewedKey.ExportPkcs8PrivateKeyPem()));
        bool written = await Task.WhenAny(writing, Task.Delay(TimeSpan.FromSeconds(20))) == writing;
        returned.ShouldBeTrue($"Select did not return within {SelectTimeout} while the key file could not be read");
        Thumbprint(await selecting).ShouldBe(Thumbprint(first));
        written.ShouldBeTrue("no check read the key file within 20 s");
        Thumbprint(await WaitForSelectedAsync(reloading, Thumbprint(renewed))).ShouldBe(Thumbprint(renewed));
    }

    // A renewal log that names the same thumbprint twice would tell an operator that a certificate was renewed when
    // it was not.
    [Fact]
    public async Task UnchangedCertificateNotLogged()
    {
        using X509Certificate2 first = TestCertificates.CreateSelfSigned("first.example");
        (string certificatePath, string keyPath) = TestCertificates.WritePemFiles(first, directory, "tls");
        var logger = new LogRecorder<ReloadingServerCertificate>(Microsoft.Extensions.Logging.LogLevel.Information);
        using var reloading = new ReloadingServerCertificate(certificatePath, keyPath, null, TimeProvider.System, logger);

        TestCertificates.WritePemFiles(first, directory, "tls");
        File.SetLastWriteTimeUtc(certificatePath, DateTime.UtcNow.AddSeconds(2));
        await Task.Delay(ReloadingServerCertificate.CheckInterval * 2 + TimeSpan.FromSeconds(1));

        Thumbprint(reloading.Select()).ShouldBe(Thumbprint(first));
        logger.Entries.ShouldBeEmpty();
    }

    // Polls Select until it returns the certificate with expectedThumbprint or 20 s pass, and returns the last one.
    private static async Task<X509Certificate2> WaitForSelectedAsync(ReloadingServerCertificate reloading, string expectedThumbprint)
    {
        var watch = Stopwatch.StartNew();
        X509Certificate2 selected = reloading.Select();
        while (Thumbprint(selected) != expectedThumbprint && watch.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(200));
            selected = reloading.Select();
        }

        return selected;
    }

    private static string Thumbprint(X509Certificate2 certificate) => certificate.GetCertHashString(HashAlgorithmName.SHA256);

    [DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int MakeFifo([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint mode = 0x180);
}
