using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Certificate of every https:// listen address, loaded from the files that Kestrel:Certificates:Default names and
/// loaded again when they change, so that a renewed certificate (cert-manager rewriting a mounted kubernetes.io/tls
/// Secret) is served without a restart. A timer checks the files every <see cref="CheckInterval"/>, so a TLS handshake
/// never waits for the disk. A renewed pair that fails to load leaves the previous certificate in service.
/// </summary>
public sealed partial class ReloadingServerCertificate : IDisposable
{
    /// <summary>Time between two checks of the files.</summary>
    public static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(5);

    private readonly string certificatePath;
    private readonly string? keyPath;
    private readonly string? password;
    private readonly ILogger logger;
    private readonly ITimer timer;

    // Guards the swap of current and previous against Dispose. File reads happen outside it.
    private readonly Lock swapLock = new();
    private X509Certificate2 current;
    private X509Certificate2? previous;
    private bool disposed;

    // Only the check that set the checking flag reads or writes these.
    private FileStamp currentStamp;
    private FileStamp? rejectedStamp;
    private int checking;

    /// <summary>Loads the certificate from <paramref name="certificatePath"/> and, for a PEM pair, <paramref name="keyPath"/>.</summary>
    /// <exception cref="CryptographicException">The files do not contain a certificate and its matching private key.</exception>
    /// <exception cref="IOException">A file cannot be read.</exception>
    public ReloadingServerCertificate(string certificatePath, string? keyPath, string? password, TimeProvider timeProvider, ILogger logger)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(certificatePath);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        this.certificatePath = certificatePath;
        this.keyPath = string.IsNullOrWhiteSpace(keyPath) ? null : keyPath;
        this.password = password;
        this.logger = logger;
        currentStamp = ReadStamp();
        current = Load();
        timer = timeProvider.CreateTimer(static state => ((ReloadingServerCertificate)state!).CheckFiles(), this, CheckInterval, CheckInterval);
    }

    /// <summary>Returns the certificate to serve, without touching the files.</summary>
    public X509Certificate2 Select() => Volatile.Read(ref current);

    /// <summary>Stops the checks, and disposes the certificate in service and the one it replaced.</summary>
    public void Dispose()
    {
        timer.Dispose();
        lock (swapLock)
        {
            disposed = true;
            previous?.Dispose();
            current.Dispose();
        }
    }

    // Runs on the timer. A check that outlasts the interval (a hung network mount) makes the next ones return at once.
    private void CheckFiles()
    {
        if (Interlocked.Exchange(ref checking, 1) == 1)
        {
            return;
        }

        try
        {
            ReloadIfChanged();
        }
        finally
        {
            Volatile.Write(ref checking, 0);
        }
    }

    private void ReloadIfChanged()
    {
        FileStamp stamp = ReadStamp();
        if (stamp == currentStamp || stamp == rejectedStamp)
        {
            return;
        }

        X509Certificate2 renewed;
        try
        {
            renewed = Load();
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            // Logged once per changed pair: the same files are not loaded again until they change. An exception of any
            // type is caught because one that left the timer's callback would end the process.
            rejectedStamp = stamp;
            ReportRejected(exception);
            return;
        }

        string replacedThumbprint;
        lock (swapLock)
        {
            if (disposed)
            {
                renewed.Dispose();
                return;
            }

            // Files rewritten with the same certificate (a Secret updated for another key, a copy that kept the content)
            // change nothing, so the certificate in service stays and no renewal is logged.
            if (string.Equals(renewed.Thumbprint, current.Thumbprint, StringComparison.Ordinal))
            {
                renewed.Dispose();
                currentStamp = stamp;
                rejectedStamp = null;
                return;
            }

            // A handshake that read the replaced certificate just before the swap may still use it, so it is kept until
            // the next renewal, and the one before it is disposed.
            replacedThumbprint = current.Thumbprint;
            previous?.Dispose();
            previous = current;
            Volatile.Write(ref current, renewed);
            currentStamp = stamp;
            rejectedStamp = null;
            DateTimeOffset notAfter = renewed.NotAfter.ToUniversalTime();
            LogReloaded(logger, certificatePath, replacedThumbprint, renewed.Thumbprint, renewed.Subject, notAfter);
        }
    }

    // Reads the certificate in service under the lock, because Dispose may run on another thread meanwhile.
    private void ReportRejected(Exception exception)
    {
        lock (swapLock)
        {
            if (!disposed)
            {
                LogReloadFailed(logger, exception, certificatePath, keyPath ?? "", current.Subject, current.Thumbprint);
            }
        }
    }

    private X509Certificate2 Load()
    {
        X509Certificate2 certificate = keyPath is not null
            ? LoadPemPair()
            : X509Certificate2.GetCertContentType(certificatePath) == X509ContentType.Pkcs12
                ? X509CertificateLoader.LoadPkcs12FromFile(certificatePath, password)
                : X509CertificateLoader.LoadCertificateFromFile(certificatePath);
        if (!certificate.HasPrivateKey)
        {
            certificate.Dispose();
            throw new CryptographicException($"{certificatePath} contains no private key, and Kestrel:Certificates:Default:KeyPath is not set.");
        }

        return certificate;
    }

    private X509Certificate2 LoadPemPair() => string.IsNullOrEmpty(password)
        ? X509Certificate2.CreateFromPemFile(certificatePath, keyPath)
        : X509Certificate2.CreateFromEncryptedPemFile(certificatePath, password, keyPath);

    private FileStamp ReadStamp() => new(FileVersion.Read(certificatePath), keyPath is null ? null : FileVersion.Read(keyPath));

    /// <summary>Identity of the two files at one moment. Stamps that differ mean that a file was replaced or rewritten.</summary>
    private sealed record FileStamp(FileVersion Certificate, FileVersion? Key);

    /// <summary>
    /// Final target of a path after symbolic links, with its size and write time. Only links in the last component are
    /// followed, so in a Secret volume the target stays ..data/tls.crt, and an update shows in the write time of the
    /// files that the kubelet writes anew. A file that is missing or cannot be read has length -1, so that its stamp
    /// differs from the loaded one and the failed load is logged.
    /// </summary>
    private sealed record FileVersion(string Target, long Length, DateTime LastWriteTimeUtc)
    {
        public static FileVersion Read(string path)
        {
            try
            {
                string target = File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? Path.GetFullPath(path);
                var file = new FileInfo(target);
                return file.Exists ? new FileVersion(target, file.Length, file.LastWriteTimeUtc) : Unreadable(path);
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
            {
                return Unreadable(path);
            }
        }

        private static FileVersion Unreadable(string path) => new(path, -1, DateTime.MinValue);
    }

    [LoggerMessage(EventId = 493, Level = LogLevel.Warning,
        Message = "The renewed HTTPS certificate {Path} (key {KeyPath}) failed to load, so the server keeps serving {Subject} "
            + "(SHA-1 {Thumbprint}). Replace both files with a matching certificate and key; they are loaded again when they change")]
    private static partial void LogReloadFailed(ILogger logger, Exception exception, string path, string keyPath, string subject, string thumbprint);

    [LoggerMessage(EventId = 494, Level = LogLevel.Information,
        Message = "Loaded the renewed HTTPS certificate {Path}: SHA-1 {OldThumbprint} replaced by {NewThumbprint} ({Subject}, valid until {NotAfter:u})")]
    private static partial void LogReloaded(ILogger logger, string path, string oldThumbprint, string newThumbprint, string subject, DateTimeOffset notAfter);
}
