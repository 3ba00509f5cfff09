using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Hosting;

/// <summary>Applies <see cref="HttpLimitsOptions"/> and the request body limit to Kestrel.</summary>
public static class HttpHardening
{
    public static WebApplicationBuilder AddHttpLimits(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<HttpLimitsOptions>()
            .BindConfiguration(HttpLimitsOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddOptions<KestrelServerOptions>()
            .Configure<IOptions<HttpLimitsOptions>, IOptions<ServerOptions>>((kestrel, limits, server) =>
            {
                HttpLimitsOptions value = limits.Value;
                kestrel.AddServerHeader = false;
                kestrel.Limits.MaxRequestBodySize = server.Value.MaxRequestBodyBytes;
                kestrel.Limits.RequestHeadersTimeout = value.RequestHeadersTimeout;
                kestrel.Limits.KeepAliveTimeout = value.KeepAliveTimeout;
                kestrel.Limits.MaxRequestHeadersTotalSize = value.MaxRequestHeadersTotalBytes;
                kestrel.Limits.MaxConcurrentConnections = value.MaxConcurrentConnections;
                kestrel.Limits.MaxConcurrentUpgradedConnections = 0;
                kestrel.Limits.MinRequestBodyDataRate = new MinDataRate(value.MinRequestBodyBytesPerSecond, value.MinBodyRateGracePeriod);
            });
        return builder;
    }
}
