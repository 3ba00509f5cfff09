using System.Diagnostics;
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
        var startInfo = new ProcessStartInfo("yamllint")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = ChartFiles.RepositoryRoot,
        };
        startInfo.ArgumentList.Add("--strict");
        startInfo.ArgumentList.Add("--format");
        startInfo.ArgumentList.Add("parsable");
        startInfo.ArgumentList.Add("-c");
        startInfo.ArgumentList.Add(ConfigPath);
        foreach (string file in files)
        {
            startInfo.ArgumentList.Add(file);
        }

        Process process;
        try
        {
            process = Process.Start(startInfo)!;
        }
        catch (System.ComponentModel.Win32Exception exception)
        {
            throw new InvalidOperationException(
                "yamllint is not installed; install the Debian package (apt-get install yamllint), which scripts/test.sh does.", exception);
        }

        using (process)
        {
            Task<string> output = process.StandardOutput.ReadToEndAsync();
            Task<string> error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
            {
                process.Kill();
                throw new TimeoutException("yamllint did not finish within 60 s.");
            }

            return (process.ExitCode, output.Result + error.Result);
        }
    }
}
