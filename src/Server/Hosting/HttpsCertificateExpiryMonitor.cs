using System.Collections.Concurrent;
using System.Security.Cryptography.X509Certificates;
using ContinualServe.Model.Telemetry;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Reads the HTTPS certificates that configuration names (Kestrel:Certificates:Default and each Kestrel:Endpoints
/// entry's Certificate) every <see cref="CheckInterval"/>, and exports each one's expiry as
/// continualserve_https_certificate_expiry_timestamp_seconds. A server can run for longer than a certificate is
/// valid, and the start check (<see cref="HttpsCertificateValidity"/>) reads only the certificate present at the
/// start. The monitor logs warning 423 once for each certificate that comes within <see cref="ExpiryWarningPeriod"/>
/// of its expiry, and warning 422 once for one that expires after the start or that replaces another while expired.
/// The files are read as they are now, which is what the next TLS handshake gets after a reload.
/// </summary>
public sealed partial class HttpsCertificateExpiryMonitor(
    IConfiguration configuration,
    IHostEnvironment environment,
    TimeProvider timeProvider,
    ILogger<HttpsCertificateExpiryMonitor> logger) : IHostedService, IDisposable
{
    /// <summary>Time between two reads of the certificate files.</summary>
    public static readonly TimeSpan CheckInterval = TimeSpan.FromMinutes(1);

    /// <summary>How long before its expiry a certificate logs warning 423.</summary>
    public static readonly TimeSpan ExpiryWarningPeriod = TimeSpan.FromDays(14);

    // Per setting, the certificate of the last check and the warnings already logged for it. Only Check touches it.
    private readonly Dictionary<string, SeenCertificate> seen = new(StringComparer.Ordinal);

    // Per setting, the certificate of the last read that succeeded. Written by Check, read by the status page.
    private readonly ConcurrentDictionary<string, ObservedCertificate> observed = new(StringComparer.Ordinal);
    private bool checkedOnce;
    private string? lastFailure;
    private ITimer? timer;
    private int checking;

    /// <summary>
    /// The certificate of each setting at its last read that succeeded, ordered by setting. Empty before the first
    /// check, which runs just after the start.
    /// </summary>
    public IReadOnlyList<ObservedCertificate> Certificates =>
        observed.Values.OrderBy(certificate => certificate.Setting, StringComparer.Ordinal).ToArray();

    /// <summary>Returns true when configuration names a certificate file, so that the monitor has something to read.</summary>
    public static bool HasCertificateFiles(IConfiguration configuration) =>
        HttpsCertificateValidity.CertificateSections(configuration).Any(section => !string.IsNullOrWhiteSpace(section["Path"]));

    /// <summary>
    /// Reads every configured certificate once, sets its expiry gauge and logs the warnings due at <paramref name="now"/>.
    /// </summary>
    public void Check(DateTimeOffset now)
    {
        foreach (IConfigurationSection section in HttpsCertificateValidity.CertificateSections(configuration))
        {
            string? path = section["Path"];
            if (string.IsNullOrWhiteSpace(path))
            {
                continue;
            }

            // A file that cannot be read keeps its last gauge value: Kestrel's start and the reload report such files.
            string fullPath = Path.Combine(environment.ContentRootPath, path);
            using X509Certificate2? certificate = HttpsCertificateValidity.TryLoad(fullPath, section["Password"]);
            if (certificate is not null)
            {
                Observe(section.Path + ":Path", fullPath, certificate, now);
            }
        }

        checkedOnce = true;
    }

    /// <summary>
    /// Starts the checks on a timer, the first one at once on a thread-pool thread, so a hung volume cannot delay the
    /// start. A timer, not a BackgroundService, because the host logs a background service that a failed start cancels
    /// before it runs as a critical unhandled exception.
    /// </summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        timer = timeProvider.CreateTimer(static state => ((HttpsCertificateExpiryMonitor)state!).CheckOnTimer(), this, TimeSpan.Zero, CheckInterval);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        timer?.Dispose();
        return Task.CompletedTask;
    }

    public void Dispose() => timer?.Dispose();

    // A check that outlasts the interval (a hung network mount) makes the next ones return at once.
    private void CheckOnTimer()
    {
        if (Interlocked.Exchange(ref checking, 1) == 1)
        {
            return;
        }

        try
        {
            CheckGuarded();
        }
        finally
        {
            Volatile.Write(ref checking, 0);
        }
    }

    // An exception that left the timer's callback would end the process, so every failed check is caught and logged.
    private void CheckGuarded()
    {
        try
        {
            Check(timeProvider.GetUtcNow());
            lastFailure = null;
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            if (exception.Message != lastFailure)
            {
                lastFailure = exception.Message;
                LogCheckFailed(logger, exception);
            }
        }
    }

    private void Observe(string setting, string path, X509Certificate2 certificate, DateTimeOffset now)
    {
        DateTimeOffset notBefore = certificate.NotBefore.ToUniversalTime();
        DateTimeOffset notAfter = certificate.NotAfter.ToUniversalTime();
        ReliabilityMetrics.HttpsCertificateExpiry.WithLabels(setting).Set(notAfter.ToUnixTimeSeconds());
        observed[setting] = new ObservedCertificate(setting, certificate.Subject, notBefore, notAfter);

        if (!seen.TryGetValue(setting, out SeenCertificate? known) || known.Thumbprint != certificate.Thumbprint)
        {
            known = new SeenCertificate(certificate.Thumbprint);
            seen[setting] = known;
        }

        if (now < notBefore || now > notAfter)
        {
            // The start check has logged the certificates that were outside their dates at the start.
            if (!known.OutsideLogged && checkedOnce)
            {
                HttpsCertificateValidity.LogOutsideValidity(logger, path, certificate.Subject, notBefore, notAfter, setting);
            }

            known.OutsideLogged = true;
        }
        else if (notAfter - now <= ExpiryWarningPeriod && !known.ExpiryLogged)
        {
            known.ExpiryLogged = true;
            LogExpiresSoon(logger, path, certificate.Subject, notAfter, (notAfter - now).TotalDays, setting);
        }
    }

    private sealed class SeenCertificate(string thumbprint)
    {
        public string Thumbprint { get; } = thumbprint;

        public bool OutsideLogged { get; set; }

        public bool ExpiryLogged { get; set; }
    }

    [LoggerMessage(EventId = 423, Level = LogLevel.Warning,
        Message = "The HTTPS certificate {Path} ({Subject}) expires at {NotAfter:u}, in {Days:F1} days. Renew the file that {Setting} names; "
            + "the serve, learn and all roles load a replaced file without a restart")]
    private static partial void LogExpiresSoon(ILogger logger, string path, string subject, DateTimeOffset notAfter, double days, string setting);

    [LoggerMessage(EventId = 424, Level = LogLevel.Warning,
        Message = "Reading the HTTPS certificates for their expiry failed; the check runs again every minute and logs a new error once")]
    private static partial void LogCheckFailed(ILogger logger, Exception exception);
}
