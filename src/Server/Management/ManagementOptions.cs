namespace ContinualServe.Server.Management;

/// <summary>Settings of the management API: where it listens and where its bearer token comes from.</summary>
public sealed class ManagementOptions
{
    public const string SectionName = "Management";

    public const string DefaultTokenVariable = "CONTINUALSERVE_MANAGEMENT_TOKEN";

    /// <summary>
    /// Listen addresses reserved for the management API, e.g. "http://127.0.0.1:8081". Empty: management routes
    /// share the inference addresses. When set, management routes return 404 on the inference addresses.
    /// </summary>
    public string Urls { get; set; } = "";

    /// <summary>File whose content (surrounding whitespace removed) is the bearer token; takes precedence over the variable.</summary>
    public string TokenFile { get; set; } = "";

    /// <summary>Environment variable that contains the bearer token when no file is given.</summary>
    public string TokenEnvironmentVariable { get; set; } = DefaultTokenVariable;

    /// <summary>
    /// When true, a start without a token fails instead of leaving the management routes unmapped. A deployment that
    /// always means to set a token (the Helm chart) sets it, so that an empty Secret stops the start.
    /// </summary>
    public bool RequireToken { get; set; }
}
