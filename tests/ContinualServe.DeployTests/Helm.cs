using System.Text.Json.Nodes;

namespace ContinualServe.DeployTests;

/// <summary>
/// Runs the helm binary that scripts/install-chart-tools.sh puts in .tools/helm, or a helm on the PATH, against the chart.
/// Each call gets its own empty helm home, so no repository, plugin or cache of the machine changes the result.
/// </summary>
internal static class Helm
{
    public const string ReleaseName = "cs";

    public const string Namespace = "models";

    private const string InstallAdvice = "Run scripts/install-chart-tools.sh, which scripts/test.sh runs.";

    /// <summary>Renders the chart with helm template and returns each manifest as JSON.</summary>
    /// <exception cref="InvalidOperationException">helm failed. The message contains its output.</exception>
    public static IReadOnlyList<JsonObject> Render(params string[] options)
    {
        string[] arguments = ["template", ReleaseName, ChartFiles.ChartDirectory, "--namespace", Namespace, .. options];
        (int exitCode, string output, string errors) = RunSeparately(arguments);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"helm {string.Join(' ', arguments)} failed with exit code {exitCode}:\n{output}{errors}");
        }

        // Only the standard output is YAML: helm writes its warnings to standard error.
        return ChartFiles.ReadYamlDocumentsAsJson(output);
    }

    /// <summary>Runs helm with <paramref name="arguments"/> and returns its exit code and its output and errors together.</summary>
    public static (int ExitCode, string Output) Run(params string[] arguments)
    {
        (int exitCode, string output, string errors) = RunSeparately(arguments);
        return (exitCode, output + errors);
    }

    private static (int ExitCode, string Output, string Errors) RunSeparately(string[] arguments)
    {
        string home = Path.Combine(Path.GetTempPath(), "continualserve-helm-" + Guid.NewGuid().ToString("N"));
        var environment = new[] { "HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME" }
            .ToDictionary(variable => variable, variable => Path.Combine(home, variable));
        try
        {
            return ToolProcess.Run(FindBinary(), arguments, InstallAdvice, environment);
        }
        finally
        {
            if (Directory.Exists(home))
            {
                Directory.Delete(home, recursive: true);
            }
        }
    }

    private static string FindBinary()
    {
        string installed = Path.Combine(ChartFiles.RepositoryRoot, ".tools", "helm", "helm");
        if (File.Exists(installed))
        {
            return installed;
        }

        string? onPath = (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, "helm"))
            .FirstOrDefault(File.Exists);
        return onPath ?? throw new InvalidOperationException(
            $"helm is not installed: {installed} is missing and no helm is on the PATH. {InstallAdvice}");
    }
}
