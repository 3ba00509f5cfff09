using System.Diagnostics;
using Xunit;

namespace ContinualServe.Tests.Shared;

/// <summary>
/// Fact that runs only where a test can make a directory undeletable: on Linux, as root with chattr +i working in the
/// temporary folder, or as another user, who gets a directory without write permission.
/// </summary>
internal sealed class UndeletableDirectoryFactAttribute : FactAttribute
{
    public UndeletableDirectoryFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
        {
            Skip = "Undeletable directories are made with Linux file attributes and permissions.";
        }
        else if (Environment.IsPrivilegedProcess && !CanSetImmutable())
        {
            Skip = "This process runs as root but cannot make a file immutable (chattr +i) in the temporary folder.";
        }
    }

    /// <summary>
    /// Makes deleting <paramref name="directory"/> fail: as root by making its first file immutable, which fails with
    /// EPERM, and otherwise by removing the directory's write permission, which fails with EACCES.
    /// </summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public static void Protect(string directory)
    {
        if (Environment.IsPrivilegedProcess)
        {
            string file = Directory.EnumerateFiles(directory).First();
            if (!Run("chattr", "+i", file))
            {
                throw new InvalidOperationException($"chattr +i {file} failed.");
            }
        }
        else
        {
            File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        }
    }

    /// <summary>Undoes <see cref="Protect"/>, so the directory can be deleted again.</summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public static void Unprotect(string directory)
    {
        if (Environment.IsPrivilegedProcess)
        {
            foreach (string file in Directory.EnumerateFiles(directory))
            {
                Run("chattr", "-i", file);
            }
        }
        else
        {
            File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    private static bool Run(string command, params string[] arguments)
    {
        try
        {
            using Process process = Process.Start(new ProcessStartInfo(command, arguments) { RedirectStandardError = true })!;
            process.StandardError.ReadToEnd();
            process.WaitForExit();
            return process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private static bool CanSetImmutable()
    {
        string directory = Directory.CreateTempSubdirectory("continualserve-chattr-check-").FullName;
        string probe = Path.Combine(directory, "probe");
        File.WriteAllText(probe, "");
        bool immutable = Run("chattr", "+i", probe);
        if (immutable)
        {
            Run("chattr", "-i", probe);
        }

        Directory.Delete(directory, recursive: true);
        return immutable;
    }
}
