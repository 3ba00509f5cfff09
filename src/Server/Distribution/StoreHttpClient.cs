using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using ContinualServe.Learner.Publishing;
using ContinualServe.Server.Hosting;

namespace ContinualServe.Server.Distribution;

/// <summary>
/// HTTP client of a replica's downloads from the learner's model store: the download time limit, and for an https://
/// store whose certificate a private authority signed, <see cref="DistributionOptions.StoreCaFile"/> as the only trusted authorities.
/// </summary>
public static class StoreHttpClient
{
    /// <summary>Creates the client. The caller disposes it.</summary>
    /// <exception cref="InvalidConfigurationException">The certificate authority file cannot be read or contains no certificate.</exception>
    public static HttpClient Create(DistributionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var handler = new SocketsHttpHandler();
        if (!string.IsNullOrWhiteSpace(options.StoreCaFile))
        {
            // A chain policy checks revocation online by default, unlike SslStream without one. Private authorities
            // rarely publish a revocation list, so every leaf they sign would fail with RevocationStatusUnknown.
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(LoadAuthorities(options.StoreCaFile));
            handler.SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = policy };
        }

        return new HttpClient(handler) { Timeout = options.DownloadTimeout };
    }

    /// <summary>Reads the certificates of a PEM file.</summary>
    /// <exception cref="InvalidConfigurationException">The file cannot be read, is a directory or contains no certificate.</exception>
    public static X509Certificate2Collection LoadAuthorities(string path)
    {
        // On Linux, opening a directory fails with "Access to the path is denied", which points at permissions.
        if (Directory.Exists(path))
        {
            throw new InvalidConfigurationException(
                $"The store's certificate authority file {path} is a directory. Name the PEM file inside it, for example {Path.Combine(path, "ca.crt")}.");
        }

        var authorities = new X509Certificate2Collection();
        try
        {
            authorities.ImportFromPemFile(path);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new InvalidConfigurationException($"The store's certificate authority file {path} cannot be read: {exception.Message}");
        }

        if (authorities.Count == 0)
        {
            throw new InvalidConfigurationException($"The store's certificate authority file {path} contains no PEM certificate (-----BEGIN CERTIFICATE-----).");
        }

        return authorities;
    }
}
