using System.Diagnostics;
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

        var startInfo = new ProcessStartInfo("node")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Directory,
        };
        startInfo.ArgumentList.Add("validate.mjs");

        using Process process = Process.Start(startInfo)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> errors = process.StandardError.ReadToEndAsync();
        process.StandardInput.Write(new JsonArray(manifests.Select(manifest => manifest.DeepClone()).ToArray()).ToJsonString());
        process.StandardInput.Close();
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill();
            throw new TimeoutException("node validate.mjs did not finish within 60 s.");
        }

        return (process.ExitCode, output.Result + errors.Result);
    }
}
