using System.Diagnostics;
using Xunit;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>Fact that runs only where this process can mount a tmpfs (Linux, as root), which gives a small volume to fill.</summary>
public sealed class TmpfsFactAttribute : FactAttribute
{
    public TmpfsFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess || !CanMountTmpfs())
        {
            Skip = "A small volume is made by mounting a tmpfs, which needs Linux and root.";
        }
    }

    /// <summary>Runs mount or umount with <paramref name="arguments"/> and returns its exit code and standard error.</summary>
    public static (int ExitCode, string Error) Run(string command, params string[] arguments)
    {
        using Process process = Process.Start(new ProcessStartInfo(command, arguments) { RedirectStandardError = true })!;
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, error);
    }

    private static bool CanMountTmpfs()
    {
        string directory = Directory.CreateTempSubdirectory("continualserve-mount-check-").FullName;
        try
        {
            if (Run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", directory).ExitCode != 0)
            {
                return false;
            }

            Run("umount", directory);
            return true;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
        finally
        {
            Directory.Delete(directory);
        }
    }
}
