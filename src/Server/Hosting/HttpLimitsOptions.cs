using System.ComponentModel.DataAnnotations;
using ContinualServe.Model;

namespace ContinualServe.Server.Hosting;

/// <summary>Kestrel limits against slow or hostile clients; the body size limit is <see cref="ServerOptions.MaxRequestBodyBytes"/>.</summary>
public sealed class HttpLimitsOptions
{
    public const string SectionName = "HttpLimits";

    /// <summary>Time a client has to send all request headers before the connection is closed.</summary>
    [DurationRange("00:00:01", "01:00:00")]
    public TimeSpan RequestHeadersTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Idle time after which a keep-alive connection is closed.</summary>
    [DurationRange("00:00:01", "01:00:00")]
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Slowest accepted request body upload, in bytes per second, after <see cref="MinBodyRateGracePeriod"/>.</summary>
    [Range(1, 1L << 30)]
    public double MinRequestBodyBytesPerSecond { get; set; } = 1024;

    /// <summary>
    /// Time a request body may upload below <see cref="MinRequestBodyBytesPerSecond"/> before the connection is closed.
    /// Kestrel rejects 1 s or less at start with an exception.
    /// </summary>
    [DurationRange("00:00:02", "01:00:00")]
    public TimeSpan MinBodyRateGracePeriod { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Largest total size of the request headers, in bytes.</summary>
    [Range(1024, 1 << 20)]
    public int MaxRequestHeadersTotalBytes { get; set; } = 32 * 1024;

    /// <summary>Most open connections; further ones are refused.</summary>
    [Range(1, 1_000_000)]
    public long MaxConcurrentConnections { get; set; } = 10_000;
}
