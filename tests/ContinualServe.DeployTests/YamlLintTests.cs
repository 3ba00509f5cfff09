using Shouldly;
using Xunit;

namespace ContinualServe.DeployTests;

/// <summary>
/// Every YAML file of the repository passes Debian's yamllint with deploy/.yamllint.yaml. Helm templates are
/// left out because they are Go templates, which become YAML only when helm renders them.
/// </summary>
public sealed class YamlLintTests
{
    private static readonly string ConfigPath = Path.Combine(ChartFiles.RepositoryRoot, "deploy", ".yamllint.yaml");

    [Fact]
    public void RepositoryYamlPassesYamllint()
    {
        string[] files = YamlFiles().ToArray();
        files.ShouldContain(path => path.EndsWith("values.yaml", StringComparison.Ordinal));

        (int exitCode, string output) = RunYamllint(files);

        exitCode.ShouldBe(0, output);
    }

    [Fact]
    public void BadIndentationFailsYamllint()
    {
        string path = Path.Combine(Path.GetTempPath(), "continualserve-yamllint-" + Guid.NewGuid().ToString("N") + ".yaml");
        File.WriteAllText(path, "server:\n   replicas: 2\n  device: cpu\n");
        try
        {
            (int exitCode, string output) = RunYamllint([path]);

            exitCode.ShouldNotBe(0, output);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static IEnumerable<string> YamlFiles()
    {
        string root = ChartFiles.RepositoryRoot;
        string[] skipped = ["/bin/", "/obj/", "/.git/", "/node_modules/", "/templates/"];
        return Directory.EnumerateFiles(root, "*.*", SearchOption.AllDirectories)
            .Where(path => path.EndsWith(".yaml", StringComparison.Ordinal) || path.EndsWith(".yml", StringComparison.Ordinal))
            .Where(path => !skipped.Any(part => path.Replace('\\', '/').Contains(part, StringComparison.Ordinal)))
            .Order(StringComparer.Ordinal);
    }

    private static (int ExitCode, string Output) RunYamllint(IEnumerable<string> files)
    {
        string[] arguments = ["--strict", "--format", "parsable", "-c", ConfigPath, .. files];
        (int exitCode, string output, string errors) = ToolProcess.Run(
            "yamllint",
            arguments,
            "yamllint is not installed; install the Debian package (apt-get install yamllint), which scripts/test.sh does.");
        return (exitCode, output + errors);
    }
}
