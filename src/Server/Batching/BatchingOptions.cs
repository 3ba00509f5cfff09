using System.ComponentModel.DataAnnotations;
using ContinualServe.Model;

namespace ContinualServe.Server.Batching;

/// <summary>Dynamic batching of inference requests into shared forward passes.</summary>
public sealed class BatchingOptions
{
    public const string SectionName = "Batching";

    /// <summary>Maximum examples (not requests) in one forward pass.</summary>
    [Range(1, 65_536)]
    public int MaxBatchSize { get; set; } = 64;

    /// <summary>
    /// Maximum time the oldest queued request waits for others to join its forward pass. Zero (the default)
    /// runs whatever is queued as soon as the model is free, so batches form only while a pass is running and no
    /// request waits while the model is idle. On a GPU a millisecond or two buys larger batches for little latency.
    /// </summary>
    [DurationRange("00:00:00", "00:00:10")]
    public TimeSpan MaxQueueDelay { get; set; } = TimeSpan.Zero;

    /// <summary>Maximum requests waiting for a forward pass; beyond it requests get 429 with Retry-After.</summary>
    [Range(1, 1_000_000)]
    public int QueueCapacity { get; set; } = 1024;

    /// <summary>Deadline of a request from the moment it is queued; a request still queued then gets 503.</summary>
    [DurationRange("00:00:00.001", "00:10:00")]
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(5);
}
