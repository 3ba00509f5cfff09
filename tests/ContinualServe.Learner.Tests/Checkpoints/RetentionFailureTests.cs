using System.Diagnostics;
using ContinualServe.Learner.Checkpoints;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Checkpoints;

/// <summary>
/// Retention of the learner's checkpoints and of its model store, when an old directory cannot be deleted because the
/// system denies it (UnauthorizedAccessException). The new checkpoint or version is durable already, so the save must
/// succeed: a failed save stops the learner, and each restart would stop again at its next round. As root a file
/// inside the old directory is made immutable (chattr +i), because root deletes files whatever their directory's mode.
/// Other users get an old directory without write permission.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class RetentionFailureTests : IDisposable
{
    private readonly TemporaryDirectory directory = new("continualserve-retention-failure-");
    private readonly List<string> protectedPaths = [];

    public void Dispose()
    {
        foreach (string path in protectedPaths)
        {
            Unprotect(path);
        }

        directory.Dispose();
    }

    [UndeletableDirectoryFact]
    public void CheckpointSaveSurvivesDeniedDeletion()
    {
        var logger = new RecordingLogger();
        var store = new LearnerCheckpointStore(directory.Path, retainedCheckpoints: 1, logger);
        store.Save(Metadata(offset: 10), WriteData("first"));
        string oldest = Directory.EnumerateDirectories(directory.Path, "c*").Single();
        Protect(oldest);

        LearnerCheckpoint saved = store.Save(Metadata(offset: 20), WriteData("second"));

        saved.Sequence.ShouldBe(2);
        store.TryLoadLatest()!.Value.Checkpoint.Sequence.ShouldBe(2);
        Directory.Exists(oldest).ShouldBeTrue();
        logger.Entries.ShouldContain(entry => entry.Level == LogLevel.Warning
            && entry.Message == $"Could not delete old learner checkpoint {oldest}");
    }

    [UndeletableDirectoryFact]
    public void VersionSaveSurvivesDeniedDeletion()
    {
        var logger = new RecordingLogger();
        var store = new ModelStore(directory.Path, retainedVersions: 1, new RecordingLoggerFactory(logger).CreateLogger<ModelStore>());
        var spec = new ModelSpec { InputShape = [4], HiddenSizes = [3], Labels = ["a", "b"] };
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(spec);
        ModelVersion first = store.Save(spec, module, new ModelManifest());
        Protect(first.Directory);

        ModelVersion second = store.Save(spec, module, new ModelManifest());

        second.Number.ShouldBe(first.Number + 1);
        store.TryLoadLatest()!.Number.ShouldBe(second.Number);
        Directory.Exists(first.Directory).ShouldBeTrue();
        logger.Entries.ShouldContain(entry => entry.Level == LogLevel.Warning && entry.Message == $"Could not delete {first.Directory}");
    }

    private static LearnerCheckpoint Metadata(long offset) => new()
    {
        ModelVersion = 1,
        Offsets = [new TrainingOffset("topic", 0, offset)],
    };

    private static Action<string> WriteData(string content) =>
        path => File.WriteAllText(Path.Combine(path, "data.bin"), content);

    // Makes deleting the directory fail with EPERM (immutable file) as root, or EACCES (no write permission) otherwise.
    // NOTE: only the root branch has run so far, on ext4.
    private void Protect(string path)
    {
        protectedPaths.Add(path);
        if (Environment.IsPrivilegedProcess)
        {
            UndeletableDirectoryFactAttribute.Run("chattr", "+i", Directory.EnumerateFiles(path).First());
        }
        else
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        }
    }

    private static void Unprotect(string path)
    {
        if (Environment.IsPrivilegedProcess)
        {
            foreach (string file in Directory.EnumerateFiles(path))
            {
                UndeletableDirectoryFactAttribute.Run("chattr", "-i", file);
            }
        }
        else
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }
}

/// <summary>
/// Fact attribute that skips a test as root where chattr cannot make a file in the temporary folder immutable (no
/// CAP_LINUX_IMMUTABLE, or a file system without the attribute), and skips it off Linux.
/// </summary>
public sealed class UndeletableDirectoryFactAttribute : FactAttribute
{
    public UndeletableDirectoryFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
        {
            Skip = "Undeletable directories are made with Linux permissions and file attributes.";
        }
        else if (Environment.IsPrivilegedProcess && !CanSetImmutable())
        {
            Skip = "This process runs as root but cannot set the immutable attribute (chattr +i) in the temporary folder.";
        }
    }

    /// <summary>Runs <paramref name="command"/> and returns true when it exited with 0.</summary>
    public static bool Run(string command, params string[] arguments)
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
        string probe = Path.Combine(Directory.CreateTempSubdirectory("continualserve-chattr-check-").FullName, "probe");
        File.WriteAllText(probe, "");
        bool immutable = Run("chattr", "+i", probe);
        if (immutable)
        {
            Run("chattr", "-i", probe);
        }

        Directory.Delete(Path.GetDirectoryName(probe)!, recursive: true);
        return immutable;
    }
}
