using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Certificate of every https:// listen address, loaded from the files that Kestrel:Certificates:Default names and
/// loaded again when they change, so that a renewed certificate (cert-manager rewriting a mounted kubernetes.io/tls
/// Secret) is served without a restart. A TLS handshake checks the files at most once per <see cref="CheckInterval"/>.
/// A renewed pair that fails to load leaves the previous certificate in service.
/// </summary>
public sealed partial class ReloadingServerCertificate : IDisposable
{
    /// <summary>Minimum time between two checks of the files' write times.</summary>
    public static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(5);

    private readonly string certificatePath;
    private readonly string? keyPath;
    private readonly string? password;
    private readonly TimeProvider timeProvider;
    private readonly ILogger logger;
    private readonly Lock checkLock = new();
    private X509Certificate2 current;
    private X509Certificate2? previous;
    private FileStamp currentStamp;
    private FileStamp? rejectedStamp;
    private long nextCheckTimestamp;

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
        this.timeProvider = timeProvider;
        this.logger = logger;
        currentStamp = ReadStamp();
        current = Load();
        nextCheckTimestamp = timeProvider.GetTimestamp() + ToTimestampTicks(CheckInterval);
    }

    /// <summary>
    /// Returns the certificate to serve. At most once per <see cref="CheckInterval"/>, and only on the thread that wins
    /// the check, it loads the files again first if their target, size or write time changed.
    /// </summary>
    public X509Certificate2 Select()
    {
        long now = timeProvider.GetTimestamp();
        if (now < Volatile.Read(ref nextCheckTimestamp) || !checkLock.TryEnter())
        {
            return Volatile.Read(ref current);
        }

        try
        {
            Volatile.Write(ref nextCheckTimestamp, now + ToTimestampTicks(CheckInterval));
            ReloadIfChanged();
            return current;
        }
        finally
        {
            checkLock.Exit();
        }
    }

    /// <summary>Disposes the certificate in service and the one it replaced.</summary>
    public void Dispose()
    {
        lock (checkLock)
        {
            previous?.Dispose();
            current.Dispose();
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
        catch (Exception exception) when (exception is CryptographicException or IOException or UnauthorizedAccessException)
        {
            // Logged once per changed pair: the same files are not loaded again until they change.
            rejectedStamp = stamp;
            LogReloadFailed(logger, exception, certificatePath, keyPath ?? "", current.Subject, current.Thumbprint);
            return;
        }

        X509Certificate2 replaced = current;

        // A handshake that read the replaced certificate just before the swap may still use it, so it is kept until
        // the next renewal, and the one before it is disposed.
        previous?.Dispose();
        previous = replaced;
        currentStamp = stamp;
        rejectedStamp = null;
        Volatile.Write(ref current, renewed);
        DateTimeOffset notAfter = renewed.NotAfter.ToUniversalTime();
        LogReloaded(logger, certificatePath, replaced.Thumbprint, renewed.Thumbprint, renewed.Subject, notAfter);
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

    private long ToTimestampTicks(TimeSpan interval) => (long)(interval.TotalSeconds * timeProvider.TimestampFrequency);

    /// <summary>Identity of the two files at one moment. Stamps that differ mean that a file was replaced or rewritten.</summary>
    private sealed record FileStamp(FileVersion Certificate, FileVersion? Key);

    /// <summary>
    /// Final target of a path after symbolic links, with its size and write time. In a Secret volume the target changes
    /// with each update even when the write time does not. A file that is missing or cannot be read has length -1, so
    /// that its stamp differs from the loaded one and the failed load is logged.
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
