using System.Diagnostics;

namespace ContinualServe.DeployTests;

/// <summary>Runner of the command-line tools that the chart tests need, with a time limit, in the repository root.</summary>
internal static class ToolProcess
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Runs <paramref name="fileName"/> and returns its exit code, standard output and standard error.
    /// <paramref name="missingAdvice"/> is the message when the tool is not installed.
    /// </summary>
    /// <exception cref="InvalidOperationException">The tool is not installed.</exception>
    /// <exception cref="TimeoutException">The tool did not finish within 60 s and was stopped.</exception>
    public static (int ExitCode, string Output, string Errors) Run(
        string fileName,
        IEnumerable<string> arguments,
        string missingAdvice,
        IReadOnlyDictionary<string, string>? environment = null,
        string? standardInput = null,
        string? workingDirectory = null)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = standardInput is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? ChartFiles.RepositoryRoot,
        };
        foreach (string argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach ((string name, string value) in environment ?? new Dictionary<string, string>())
        {
            startInfo.Environment[name] = value;
        }

        Process process;
        try
        {
            process = Process.Start(startInfo)!;
        }
        catch (System.ComponentModel.Win32Exception exception)
        {
            throw new InvalidOperationException(missingAdvice, exception);
        }

        using (process)
        {
            Task<string> output = process.StandardOutput.ReadToEndAsync();
            Task<string> errors = process.StandardError.ReadToEndAsync();
            if (standardInput is not null)
            {
                process.StandardInput.Write(standardInput);
                process.StandardInput.Close();
            }

            if (!process.WaitForExit(Timeout))
            {
                process.Kill();
                string command = string.Join(' ', startInfo.ArgumentList.Prepend(Path.GetFileName(fileName)));
                throw new TimeoutException($"{command} did not finish within {Timeout.TotalSeconds} s and was stopped.");
            }

            return (process.ExitCode, output.Result, errors.Result);
        }
    }
}
