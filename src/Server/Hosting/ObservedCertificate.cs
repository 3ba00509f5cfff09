namespace ContinualServe.Server.Hosting;

/// <summary>
/// A certificate that <see cref="HttpsCertificateExpiryMonitor"/> read, with the setting that names its file (such as
/// Kestrel:Certificates:Default:Path), its subject and its validity dates in UTC.
/// </summary>
public sealed record ObservedCertificate(string Setting, string Subject, DateTimeOffset NotBefore, DateTimeOffset NotAfter);
