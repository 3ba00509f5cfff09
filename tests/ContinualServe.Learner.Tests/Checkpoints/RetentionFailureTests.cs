using ContinualServe.Learner.Checkpoints;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using ContinualServe.Tests.Shared;
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
            UndeletableDirectoryFactAttribute.Unprotect(path);
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

    private void Protect(string path)
    {
        protectedPaths.Add(path);
        UndeletableDirectoryFactAttribute.Protect(path);
    }
}
