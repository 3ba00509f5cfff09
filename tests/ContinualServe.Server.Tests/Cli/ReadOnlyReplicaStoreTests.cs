using System.Diagnostics;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>
/// <c>continualserve serve</c> on the version topic with a store directory it cannot write. Root writes to a directory
/// whatever its mode, so as root the directory gets the immutable attribute (chattr +i), and other users get mode 0555.
/// </summary>
public sealed class ReadOnlyReplicaStoreTests : IDisposable
{
    private readonly string store = Directory.CreateTempSubdirectory("continualserve-read-only-replica-").FullName;

    public void Dispose()
    {
        if (Environment.IsPrivilegedProcess)
        {
            ReadOnlyStoreFactAttribute.Chattr("-i", store);
        }
        else if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(store, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        Directory.Delete(store, recursive: true);
    }

    [ReadOnlyStoreFact(Timeout = 60_000)]
    public async Task ReadOnlyStoreStopsStart()
    {
        if (Environment.IsPrivilegedProcess)
        {
            ReadOnlyStoreFactAttribute.Chattr("+i", store).ShouldBeTrue("chattr +i failed");
        }
        else if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(store, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }

        // No broker listens on port 1, and the write check comes before the first connection.
        (int exitCode, string standardOutput, string standardError) = await ContinualServeProcess.RunAsync(
            ["serve", "--urls", "http://127.0.0.1:0", "--store", store, "--device", "cpu", "--bootstrap-servers", "127.0.0.1:1"]);

        string output = standardOutput + standardError;
        exitCode.ShouldBe(2, output);
        output.ShouldContain($"The store directory '{store}' is not writable, and the replica writes every version it downloads there");
        output.ShouldContain("mounted read-only");
        output.ShouldContain("lsattr -d");
    }
}

/// <summary>A fact that runs on Linux where this process can make a directory read-only for itself.</summary>
public sealed class ReadOnlyStoreFactAttribute : FactAttribute
{
    public ReadOnlyStoreFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
        {
            Skip = "Read-only directories are made with Linux permissions and attributes.";
            return;
        }

        if (Environment.IsPrivilegedProcess && !CanSetImmutable())
        {
            Skip = "This process runs as root but cannot set the immutable attribute, and root writes to a directory whatever its mode.";
        }
    }

    /// <summary>Runs chattr with <paramref name="change"/> on <paramref name="path"/>. Returns false when it fails or is missing.</summary>
    internal static bool Chattr(string change, string path)
    {
        try
        {
            using Process chattr = Process.Start(new ProcessStartInfo("chattr", [change, path]) { RedirectStandardError = true })!;
            chattr.StandardError.ReadToEnd();
            return chattr.WaitForExit(10_000) && chattr.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private static bool CanSetImmutable()
    {
        string directory = Directory.CreateTempSubdirectory("continualserve-chattr-check-").FullName;
        bool set = Chattr("+i", directory);
        if (set)
        {
            Chattr("-i", directory);
        }

        Directory.Delete(directory);
        return set;
    }
}
