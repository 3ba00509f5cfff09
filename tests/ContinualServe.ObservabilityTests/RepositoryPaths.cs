namespace ContinualServe.ObservabilityTests;

/// <summary>Files the tests read from the build output, and where they leave artifacts.</summary>
internal static class RepositoryPaths
{
    public static string Dashboard => Path.Combine(AppContext.BaseDirectory, "deploy", "grafana", "continualserve-dashboard.json");

    public static string RulesFile => Path.Combine(AppContext.BaseDirectory, "deploy", "prometheus", "continualserve-rules.yaml");

    public static string PrometheusRule => Path.Combine(AppContext.BaseDirectory, "deploy", "prometheus", "continualserve-prometheusrule.yaml");

    public static string DataDirectory => Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist");

    /// <summary>artifacts/observability under the repository root (ignored by git), created on first use.</summary>
    public static string ArtifactsDirectory
    {
        get
        {
            DirectoryInfo? directory = new(AppContext.BaseDirectory);
            while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "ContinualServe.sln")))
            {
                directory = directory.Parent;
            }

            string root = directory?.FullName ?? AppContext.BaseDirectory;
            string artifacts = Path.Combine(root, "artifacts", "observability");
            Directory.CreateDirectory(artifacts);
            return artifacts;
        }
    }
}
