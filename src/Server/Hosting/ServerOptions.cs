using System.ComponentModel.DataAnnotations;
using ContinualServe.Model;

namespace ContinualServe.Server.Hosting;

/// <summary>Settings of the inference server.</summary>
public sealed class ServerOptions
{
    public const string SectionName = "Server";

    /// <summary>Model name in the inference routes (/v2/models/{name}/infer), one path segment.</summary>
    [Required]
    [StringLength(128)]
    [RouteSegment]
    public string ModelName { get; set; } = "fashion-mnist";

    /// <summary>Model store directory the server loads versions from.</summary>
    [Required]
    public string StoreDirectory { get; set; } = "models";

    /// <summary>Inference device: auto, cpu, cuda or cuda:N.</summary>
    public string Device { get; set; } = "cpu";

    /// <summary>
    /// libtorch intra-op threads for the process; 0 keeps libtorch's default (one per core). One thread is
    /// best for small models on CPU: with more, libtorch's worker threads compete with Kestrel for the cores
    /// (measured here on 2 cores: 17,700 against 7,700 one-item requests/s, and p99 12 ms against 79 ms).
    /// The setting is process-wide, so a learner in the same process trains with it too.
    /// </summary>
    [Range(0, 1024)]
    public int IntraOpThreads { get; set; } = 1;

    /// <summary>Configuration key of <see cref="MaxRequestBodyBytes"/>, which the 413 errors name.</summary>
    public const string MaxRequestBodyBytesKey = SectionName + ":" + nameof(MaxRequestBodyBytes);

    /// <summary>Configuration key of <see cref="MaxBatchSize"/>, which the errors for too many rows name.</summary>
    public const string MaxBatchSizeKey = SectionName + ":" + nameof(MaxBatchSize);

    /// <summary>Largest accepted request body, in bytes; larger bodies get 413.</summary>
    [Range(1024, 1L << 30)]
    public long MaxRequestBodyBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>Most examples in one request.</summary>
    [Range(1, 65_536)]
    public int MaxBatchSize { get; set; } = 256;

    /// <summary>How often a server without an in-process learner checks the store for a newer version; zero disables polling.</summary>
    [DurationRange("00:00:00", "01:00:00")]
    public TimeSpan StorePollInterval { get; set; } = TimeSpan.FromSeconds(1);
}
