using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Start check of the certificates that Kestrel serves: Kestrel:Certificates:Default and the Certificate of each
/// Kestrel:Endpoints entry. Kestrel serves an expired certificate without a word, and every client that checks
/// certificates then rejects the connection, so the start logs its validity dates. A path that names a directory stops
/// the start with an error that names the directory, where Kestrel reports only that access was denied.
/// </summary>
public static partial class HttpsCertificateValidity
{
    private const string DefaultCertificateKey = "Kestrel:Certificates:Default";

    /// <summary>
    /// Logs warning 422 for each configured certificate that has expired or is not valid yet at <paramref name="now"/>.
    /// A file that is missing or cannot be read is left to Kestrel, which stops the start with its own error.
    /// </summary>
    /// <exception cref="InvalidConfigurationException">A certificate's Path or KeyPath names a directory.</exception>
    public static void CheckConfiguredCertificates(IConfiguration configuration, ILogger logger, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        foreach (IConfigurationSection section in CertificateSections(configuration))
        {
            ThrowIfDirectory(section, "Path");
            ThrowIfDirectory(section, "KeyPath");
            string? path = section["Path"];
            if (string.IsNullOrWhiteSpace(path) || !File.Exists(path))
            {
                continue;
            }

            using X509Certificate2? certificate = TryLoad(path, section["Password"]);
            if (certificate is null)
            {
                continue;
            }

            DateTimeOffset notBefore = certificate.NotBefore.ToUniversalTime();
            DateTimeOffset notAfter = certificate.NotAfter.ToUniversalTime();
            if (now < notBefore || now > notAfter)
            {
                LogOutsideValidity(logger, path, certificate.Subject, notBefore, notAfter, section.Path + ":Path");
            }
        }
    }

    /// <summary>Returns the Certificate section of each Kestrel:Endpoints entry that sets one.</summary>
    public static IEnumerable<IConfigurationSection> EndpointCertificateSections(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return configuration.GetSection("Kestrel:Endpoints").GetChildren()
            .Select(endpoint => endpoint.GetSection("Certificate"))
            .Where(certificate => certificate.Exists());
    }

    /// <summary>Returns Kestrel:Certificates:Default and the Certificate section of each Kestrel:Endpoints entry that sets one.</summary>
    internal static IEnumerable<IConfigurationSection> CertificateSections(IConfiguration configuration) =>
        EndpointCertificateSections(configuration).Prepend(configuration.GetSection(DefaultCertificateKey));

    private static void ThrowIfDirectory(IConfigurationSection section, string key)
    {
        string? path = section[key];
        if (!string.IsNullOrWhiteSpace(path) && Directory.Exists(path))
        {
            throw new InvalidConfigurationException(
                $"{section.Path}:{key} names {path}, which is a directory. Set it to the certificate or key file inside it.");
        }
    }

    /// <summary>Loads the certificate in <paramref name="path"/> (PEM or PKCS#12), or returns null when the file cannot be read as one.</summary>
    internal static X509Certificate2? TryLoad(string path, string? password)
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
            + "Replace the file that {Setting} names. The serve, learn and all roles load a replaced file without a restart")]
    internal static partial void LogOutsideValidity(ILogger logger, string path, string subject, DateTimeOffset notBefore, DateTimeOffset notAfter, string setting);
}
