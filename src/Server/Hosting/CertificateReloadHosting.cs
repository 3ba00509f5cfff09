using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace ContinualServe.Server.Hosting;

/// <summary>Registration of <see cref="ReloadingServerCertificate"/> as the certificate selector of Kestrel's https:// addresses.</summary>
public static partial class CertificateReloadHosting
{
    private const string DefaultCertificateKey = "Kestrel:Certificates:Default";

    /// <summary>
    /// Starts the <see cref="HttpsCertificateExpiryMonitor"/> when configuration names a certificate file. Serves
    /// Kestrel:Certificates:Default through a <see cref="ReloadingServerCertificate"/> on every https:// address that
    /// has no certificate of its own, when that setting names a file. Kestrel still loads the file at start, so a
    /// missing or invalid certificate stops the start as before. A Kestrel:Endpoints entry with its own Certificate turns
    /// the reload off, because a selector set for all addresses would replace that certificate.
    /// </summary>
    public static WebApplicationBuilder AddCertificateReload(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (HttpsCertificateExpiryMonitor.HasCertificateFiles(builder.Configuration))
        {
            builder.Services.TryAddSingleton(TimeProvider.System);
            // Registered as a service too, so that the status page can read the certificates it found.
            builder.Services.TryAddSingleton<HttpsCertificateExpiryMonitor>();
            builder.Services.AddHostedService(services => services.GetRequiredService<HttpsCertificateExpiryMonitor>());
        }

        IConfigurationSection section = builder.Configuration.GetSection(DefaultCertificateKey);
        string? certificatePath = section["Path"];
        if (string.IsNullOrWhiteSpace(certificatePath))
        {
            return builder;
        }

        string endpointCertificates = string.Join(
            ", ", HttpsCertificateValidity.EndpointCertificateSections(builder.Configuration).Select(certificate => certificate.Path));
        int reloadOffLogged = 0;
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureHttpsDefaults(https =>
        {
            // Kestrel calls this once for each https:// address.
            if (endpointCertificates.Length > 0)
            {
                if (Interlocked.Exchange(ref reloadOffLogged, 1) == 0)
                {
                    ILogger logger = kestrel.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger<ReloadingServerCertificate>();
                    LogReloadOff(logger, endpointCertificates);
                }

                return;
            }

            ReloadingServerCertificate certificate = kestrel.ApplicationServices.GetRequiredService<ReloadingServerCertificate>();
            https.ServerCertificateSelector = (_, _) => certificate.Select();
        }));

        // Kestrel reads relative paths from the content root (--contentRoot), which need not be the working directory.
        string contentRoot = builder.Environment.ContentRootPath;
        string? configuredKeyPath = section["KeyPath"];
        string? keyPath = string.IsNullOrWhiteSpace(configuredKeyPath) ? null : Path.Combine(contentRoot, configuredKeyPath);
        builder.Services.AddSingleton(services => new ReloadingServerCertificate(
            Path.Combine(contentRoot, certificatePath),
            keyPath,
            section["Password"],
            services.GetService<TimeProvider>() ?? TimeProvider.System,
            services.GetRequiredService<ILoggerFactory>().CreateLogger<ReloadingServerCertificate>()));
        return builder;
    }

    [LoggerMessage(EventId = 495, Level = LogLevel.Information,
        Message = "The reload of Kestrel:Certificates:Default is off, because {EndpointCertificates} sets a certificate of its own. "
            + "Kestrel reloads the certificates of Kestrel:Endpoints entries itself, binding an endpoint again when its files change")]
    private static partial void LogReloadOff(ILogger logger, string endpointCertificates);
}
