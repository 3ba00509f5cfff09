using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ContinualServe.Tests.Shared;

/// <summary>
/// Certificates with RSA 2048 keys that tests build for HTTPS servers on 127.0.0.1. Compiled into each test project
/// that uses it, as a linked file.
/// </summary>
internal static class TestCertificates
{
    private const string ServerAuthenticationOid = "1.3.6.1.5.5.7.3.1";

    /// <summary>
    /// Builds a certificate that signs itself, has only a subject name and no extensions, and is valid from five minutes
    /// ago for one day. The returned certificate contains its private key.
    /// </summary>
    public static X509Certificate2 CreateSelfSigned(string subjectName) =>
        CreateSelfSigned(subjectName, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));

    /// <summary>
    /// Builds a certificate that signs itself, has only a subject name and no extensions, and is valid from
    /// <paramref name="notBefore"/> to <paramref name="notAfter"/>. The returned certificate contains its private key.
    /// </summary>
    public static X509Certificate2 CreateSelfSigned(string subjectName, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        using RSA rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=" + subjectName, rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        return request.CreateSelfSigned(notBefore, notAfter);
    }

    /// <summary>
    /// Builds a TLS server certificate that signs itself and is also its own certificate authority, valid from five
    /// minutes ago for one day. Its subject alternative name is the address 127.0.0.1 when
    /// <paramref name="loopbackAddress"/> is true, and otherwise only the host name store.other.example.
    /// </summary>
    public static X509Certificate2 CreateServerAuthority(string subjectName, bool loopbackAddress)
    {
        using RSA rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=" + subjectName, rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        if (loopbackAddress)
        {
            names.AddIpAddress(IPAddress.Loopback);
        }
        else
        {
            names.AddDnsName("store.other.example");
        }

        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyCertSign, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(ServerAuthenticationOid)], critical: false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
    }

    /// <summary>
    /// Builds a TLS server certificate for 127.0.0.1 (subject CN=127.0.0.1) that <paramref name="authority"/> signed,
    /// with no revocation list, as <c>openssl x509 -req</c> issues it. It is valid from five minutes ago for 12 hours.
    /// </summary>
    public static X509Certificate2 CreateSignedBy(X509Certificate2 authority)
    {
        using RSA rsa = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(ServerAuthenticationOid)], critical: false));
        byte[] serialNumber = RandomNumberGenerator.GetBytes(16);
        using X509Certificate2 signed = request.Create(authority, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(12), serialNumber);
        using X509Certificate2 withKey = signed.CopyWithPrivateKey(rsa);

        // Loading a PKCS#12 copy gives the certificate a key of its own that outlives rsa.
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), password: null);
    }

    /// <summary>
    /// Writes <paramref name="certificate"/> to <c>name.crt</c> and its RSA private key (PKCS#8) to <c>name.key</c> in
    /// <paramref name="directory"/>, both as PEM, and returns the two paths.
    /// </summary>
    public static (string Certificate, string Key) WritePemFiles(X509Certificate2 certificate, string directory, string name)
    {
        using RSA key = certificate.GetRSAPrivateKey()
            ?? throw new ArgumentException($"Certificate {certificate.Subject} has no RSA private key.", nameof(certificate));
        string certificatePath = Path.Combine(directory, name + ".crt");
        string keyPath = Path.Combine(directory, name + ".key");
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath);
    }
}
