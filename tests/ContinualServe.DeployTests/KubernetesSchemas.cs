using System.Text.Json.Nodes;

namespace ContinualServe.DeployTests;

/// <summary>
/// Runs KubernetesSchemas/validate.mjs with node, which checks manifests against the Kubernetes and Prometheus
/// Operator schemas that scripts/install-chart-tools.sh installs beside it.
/// </summary>
internal static class KubernetesSchemas
{
    private static readonly string Directory =
        Path.Combine(ChartFiles.RepositoryRoot, "tests", "ContinualServe.DeployTests", "KubernetesSchemas");

    /// <summary>Validates <paramref name="manifests"/> and returns node's exit code and one output line per manifest.</summary>
    public static (int ExitCode, string Output) Validate(IEnumerable<JsonObject> manifests)
    {
        if (!System.IO.Directory.Exists(Path.Combine(Directory, "node_modules", "kubernetes-models")))
        {
            throw new InvalidOperationException(
                $"The Kubernetes schemas are not installed in {Directory}/node_modules. Run scripts/install-chart-tools.sh, which scripts/test.sh runs.");
        }

        string manifestsJson = new JsonArray(manifests.Select(manifest => manifest.DeepClone()).ToArray()).ToJsonString();
        (int exitCode, string output, string errors) = ToolProcess.Run(
            "node",
            ["validate.mjs"],
            "node is not installed. Run scripts/install-chart-tools.sh, which installs it with apt-get when it is missing.",
            standardInput: manifestsJson,
            workingDirectory: Directory);
        return (exitCode, output + errors);
    }
}
