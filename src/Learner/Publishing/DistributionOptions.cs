using System.ComponentModel.DataAnnotations;
using ContinualServe.Model;

namespace ContinualServe.Learner.Publishing;

/// <summary>
/// Settings of version distribution, shared by both sides: the learner announces each promoted version on
/// <see cref="Topic"/>, and server replicas consume the topic and download the weights over HTTP.
/// </summary>
public sealed class DistributionOptions
{
    public const string SectionName = "Distribution";

    /// <summary>
    /// Kafka bootstrap servers of the version topic. Empty on a server means "no distribution": the replica
    /// only polls its own store directory (a shared volume). The learner falls back to its own bootstrap servers.
    /// </summary>
    public string BootstrapServers { get; set; } = "";

    /// <summary>Compacted topic that carries one announcement per promoted version, keyed by model name.</summary>
    [Required(ErrorMessage = "Distribution:Topic is required; the default is model-versions.")]
    public string Topic { get; set; } = "model-versions";

    /// <summary>
    /// Base URL of the learner's read-only model store, for example http://continualserve-learner:8081.
    /// The learner writes it into each announcement; on a server a non-empty value overrides the announced one.
    /// </summary>
    [Url(ErrorMessage = "Distribution:StoreUrl must be an absolute http or https URL, for example http://continualserve-learner:8081.")]
    public string? StoreUrl { get; set; }

    /// <summary>
    /// File whose content (surrounding whitespace removed) is the bearer token of the learner's model store; takes
    /// precedence over <see cref="StoreTokenEnvironmentVariable"/>. With a token the learner serves its store only to
    /// requests that send it, and a replica sends it with each download. Without one the store is open. A blank file,
    /// or a token with a character outside printable ASCII, fails validation at start.
    /// </summary>
    public string StoreTokenFile { get; set; } = "";

    /// <summary>Environment variable that contains the model store's bearer token when no file is given.</summary>
    public string StoreTokenEnvironmentVariable { get; set; } = DefaultStoreTokenVariable;

    /// <summary>
    /// When true, a start without a store token fails validation instead of leaving the learner's store open or a
    /// replica downloading without a token. A deployment that always means to set one (the Helm chart) sets it, so
    /// that an empty Secret or variable stops the start.
    /// </summary>
    public bool RequireStoreToken { get; set; }

    public const string DefaultStoreTokenVariable = "CONTINUALSERVE_STORE_TOKEN";

    /// <summary>Partitions of the version topic when the learner creates it.</summary>
    [Range(1, 1024)]
    public int TopicPartitions { get; set; } = 1;

    /// <summary>Replication factor of the version topic when the learner creates it; -1 takes the broker default.</summary>
    [Range(-1, 32)]
    public short TopicReplicationFactor { get; set; } = -1;

    /// <summary>Wait before the first retry of a failed or corrupt download; doubled after each failure.</summary>
    [DurationRange("00:00:00.001", "01:00:00")]
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest wait between download retries.</summary>
    [DurationRange("00:00:00.001", "01:00:00")]
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// PEM file of the certificate authorities that a replica trusts for an https:// store URL, in place of the system's
    /// trusted authorities, for a learner whose certificate a private authority signed. Empty: the system's authorities.
    /// </summary>
    public string StoreCaFile { get; set; } = "";

    /// <summary>
    /// Stall timeout of a version download: the download fails when the learner's store sends no bytes (response headers
    /// or body) for this long. A download whose bytes keep arriving may take longer in total, so large weights on a slow
    /// link still arrive.
    /// </summary>
    [DurationRange("00:00:01", "1.00:00:00")]
    public TimeSpan DownloadTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Minimum average rate of a version download in bytes per second, checked over each <see cref="DownloadTimeout"/>
    /// of every file's body from its response headers on: an interval that brings fewer bytes fails the download, so a store that trickles bytes
    /// just often enough to escape the stall timeout cannot hold a replica's download open indefinitely. The default,
    /// 64 KiB/s, moves 1 GiB of weights in under 5 hours. 0 turns the check off.
    /// </summary>
    public long MinDownloadBytesPerSecond { get; set; } = DefaultMinDownloadBytesPerSecond;

    public const long DefaultMinDownloadBytesPerSecond = 64 * 1024;

    /// <summary>Downloaded versions a server keeps in its local store; older ones are deleted after a swap.</summary>
    [Range(1, 1000)]
    public int RetainedVersions { get; set; } = 3;

    /// <summary>Lists the cross-field errors that data annotations cannot express.</summary>
    public IEnumerable<string> Validate()
    {
        if (MaxRetryDelay < RetryDelay)
        {
            yield return $"Distribution:MaxRetryDelay ({MaxRetryDelay}) must not be shorter than Distribution:RetryDelay ({RetryDelay}).";
        }

        // [Url] also accepts ftp://, which the replica's HTTP client cannot download from.
        if (!string.IsNullOrEmpty(StoreUrl)
            && !(Uri.TryCreate(StoreUrl, UriKind.Absolute, out Uri? store) && (store.Scheme == Uri.UriSchemeHttp || store.Scheme == Uri.UriSchemeHttps)))
        {
            yield return $"Distribution:StoreUrl must be an absolute http or https URL, for example http://continualserve-learner:8081; it is '{StoreUrl}'.";
        }
        else if (!string.IsNullOrEmpty(StoreUrl) && new Uri(StoreUrl).UserInfo.Length > 0)
        {
            // Replicas reject announcements whose store URL carries credentials, because they log the URL.
            yield return "Distribution:StoreUrl must not contain a user name or password, which replicas would log; "
                + "set Distribution:StoreTokenFile for the store API's bearer token instead.";
        }
    }
}
