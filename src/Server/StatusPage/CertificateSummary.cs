using ContinualServe.Server.Hosting;

namespace ContinualServe.Server.StatusPage;

/// <summary>
/// The status page's entry for one HTTPS certificate file. <see cref="State"/> is valid, expires_soon (less than
/// the 14 days of the ContinualServeCertificateExpiresSoon alert), expired or not_yet_valid. <see cref="DaysLeft"/> is
/// negative once the certificate has expired.
/// </summary>
public sealed record CertificateSummary(
    string Setting,
    string Subject,
    DateTimeOffset NotAfter,
    double DaysLeft,
    string State)
{
    public static CertificateSummary From(ObservedCertificate certificate, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        TimeSpan left = certificate.NotAfter - now;
        return new CertificateSummary(certificate.Setting, certificate.Subject, certificate.NotAfter, left.TotalDays, Describe(certificate, now));
    }

    private static string Describe(ObservedCertificate certificate, DateTimeOffset now)
    {
        if (now > certificate.NotAfter)
        {
            return "expired";
        }

        if (now < certificate.NotBefore)
        {
            return "not_yet_valid";
        }

        // Less than 14 days, as in the expression of the ContinualServeCertificateExpiresSoon alert.
        return certificate.NotAfter - now < HttpsCertificateExpiryMonitor.ExpiryWarningPeriod ? "expires_soon" : "valid";
    }
}
