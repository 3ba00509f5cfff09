using System.Diagnostics;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Checkpoints;

/// <summary>
/// A learner restarted on a store that turned read-only after its first run. As root the store is a tmpfs remounted
/// read-only, because root writes to a directory whatever its mode. Other users get directories without write permission.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ReadOnlyStoreTests : IDisposable
{
    private const string Topic = "read-only-examples";

    private readonly string storeDirectory = Directory.CreateTempSubdirectory("continualserve-read-only-").FullName;
    private bool mounted;

    public void Dispose()
    {
        if (mounted)
        {
            Run("umount", storeDirectory);
        }
        else
        {
            File.SetUnixFileMode(storeDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        Directory.Delete(storeDirectory, recursive: true);
    }

    [ReadOnlyDirectoryFact(Timeout = 120_000)]
    public async Task ReadOnlyStoreStopsStart()
    {
        await Task.Run(() =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            if (Environment.IsPrivilegedProcess)
            {
                RunMount("-t", "tmpfs", "-o", "size=16m", "tmpfs", storeDirectory);
                mounted = true;
            }

            LearnerOptions options = LearnerHarness.Options(
                broker.BootstrapServers, Topic, "read-only-test", storeDirectory, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
            using (var first = new ContinualLearner(options, new RecordingLoggerFactory()))
            {
                first.Start();
            }

            MakeReadOnly();
            using var second = new ContinualLearner(options, new RecordingLoggerFactory());

            Exception failure = Should.Throw<Exception>(() => second.Start());

            (failure is IOException or UnauthorizedAccessException).ShouldBeTrue(failure.ToString());
            failure.Message.ShouldContain(storeDirectory);
            second.Status.IsRunning.ShouldBeFalse();
        });
    }

    private void MakeReadOnly()
    {
        if (mounted)
        {
            RunMount("-o", "remount,ro", storeDirectory);
            return;
        }

        UnixFileMode readAndList = UnixFileMode.UserRead | UnixFileMode.UserExecute;
        File.SetUnixFileMode(Path.Combine(storeDirectory, "learner-checkpoint"), readAndList);
        File.SetUnixFileMode(storeDirectory, readAndList);
    }

    private static void RunMount(params string[] arguments) => Run("mount", arguments);

    private static void Run(string command, params string[] arguments)
    {
        using Process process = Process.Start(new ProcessStartInfo(command, arguments) { RedirectStandardError = true })!;
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        process.ExitCode.ShouldBe(0, $"{command} {string.Join(' ', arguments)} failed: {error}");
    }
}

/// <summary>Skips a test as root when this process cannot mount a tmpfs, because only a read-only mount stops root from writing.</summary>
public sealed class ReadOnlyDirectoryFactAttribute : FactAttribute
{
    public ReadOnlyDirectoryFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
        {
            Skip = "Read-only directories are made with Linux permissions and mounts.";
        }
        else if (Environment.IsPrivilegedProcess && !CanMountTmpfs())
        {
            Skip = "This process runs as root but cannot mount a tmpfs, and root writes to a directory whatever its mode.";
        }
    }

    private static bool CanMountTmpfs()
    {
        string directory = Directory.CreateTempSubdirectory("continualserve-mount-check-").FullName;
        try
        {
            using Process? mount = Process.Start(new ProcessStartInfo("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", directory]) { RedirectStandardError = true });
            mount!.WaitForExit();
            if (mount.ExitCode != 0)
            {
                return false;
            }

            using Process? unmount = Process.Start("umount", [directory]);
            unmount!.WaitForExit();
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
