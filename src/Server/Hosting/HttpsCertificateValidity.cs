using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Start check of the certificate in Kestrel:Certificates:Default:Path. Kestrel serves an expired certificate without a
/// word, and every client that checks certificates then rejects the connection, so the start logs its validity dates.
/// </summary>
public static partial class HttpsCertificateValidity
{
    private const string PathKey = "Kestrel:Certificates:Default:Path";

    /// <summary>
    /// Logs warning 422 when the configured certificate has expired or is not valid yet at <paramref name="now"/>. A file
    /// that is missing or cannot be read is left to Kestrel, which stops the start with its own error.
    /// </summary>
    public static void LogIfOutsideValidity(IConfiguration configuration, ILogger logger, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        string? path = configuration[PathKey];
        if (string.IsNullOrWhiteSpace(path) || !File.Exists(path))
        {
            return;
        }

        // NOTE: only the default certificate is checked, not those of Kestrel:Endpoints:NAME:Certificate.
        using X509Certificate2? certificate = TryLoad(path, configuration["Kestrel:Certificates:Default:Password"]);
        if (certificate is null)
        {
            return;
        }

        DateTimeOffset notBefore = certificate.NotBefore.ToUniversalTime();
        DateTimeOffset notAfter = certificate.NotAfter.ToUniversalTime();
        if (now < notBefore || now > notAfter)
        {
            LogOutsideValidity(logger, path, certificate.Subject, notBefore, notAfter);
        }
    }

    private static X509Certificate2? TryLoad(string path, string? password)
    {
        try
        {
            return X509Certificate2.GetCertContentType(path) == X509ContentType.Pkcs12
                ? X509CertificateLoader.LoadPkcs12FromFile(path, password)
                : X509CertificateLoader.LoadCertificateFromFile(path);
        }
        catch (Exception exception) when (exception is CryptographicException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    [LoggerMessage(EventId = 422, Level = LogLevel.Warning,
        Message = "The HTTPS certificate {Path} ({Subject}) is valid only from {NotBefore:u} to {NotAfter:u}, so clients reject it. "
            + "Replace the file that " + PathKey + " names and restart")]
    private static partial void LogOutsideValidity(ILogger logger, string path, string subject, DateTimeOffset notBefore, DateTimeOffset notAfter);
}
