using ContinualServe.Model.Store;
using Shouldly;
using Xunit;

namespace ContinualServe.Model.Tests.Store;

/// <summary>
/// Writes of the pin, the pause marker and the golden set that fail, as they do on a full or read-only volume. A
/// directory takes the place of the file being replaced, so the rename fails even for root.
/// </summary>
public sealed class ControlFileWriteFailureTests
{
    [Fact]
    public void FailedPinWriteLeavesNoTemporaryFile()
    {
        string directory = SmallModels.TemporaryDirectory();
        Directory.CreateDirectory(Path.Combine(directory, StoreControlFiles.PinnedVersionFileName));

        Should.Throw<IOException>(() => StoreControlFiles.WritePinnedVersion(directory, 3));

        TemporaryFiles(directory).ShouldBeEmpty();
    }

    [Fact]
    public void FailedPauseWriteLeavesNoTemporaryFile()
    {
        string directory = SmallModels.TemporaryDirectory();
        Directory.CreateDirectory(Path.Combine(directory, StoreControlFiles.LearningPausedFileName));

        Should.Throw<IOException>(() => StoreControlFiles.SetLearningPaused(directory, paused: true));

        TemporaryFiles(directory).ShouldBeEmpty();
    }

    [Fact]
    public void FailedGoldenSetWriteLeavesNoTemporaryFile()
    {
        string directory = SmallModels.TemporaryDirectory();
        Directory.CreateDirectory(Path.Combine(directory, GoldenSet.FileName));
        var golden = new GoldenSet { Examples = [new GoldenExample(1, new float[16])] };

        Should.Throw<IOException>(() => golden.Save(directory));

        TemporaryFiles(directory).ShouldBeEmpty();
    }

    [Fact]
    public void StoreRemovesAbandonedControlFilesAtStart()
    {
        string directory = SmallModels.TemporaryDirectory();
        string abandoned = Path.Combine(directory, $".{GoldenSet.FileName}.{Guid.NewGuid():N}.tmp");
        string recent = Path.Combine(directory, $".{StoreControlFiles.PinnedVersionFileName}.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(abandoned, "{\"examples\":[");
        File.SetLastWriteTimeUtc(abandoned, DateTime.UtcNow.AddMinutes(-5));
        File.WriteAllText(recent, "4");

        _ = new ModelStore(directory);

        File.Exists(abandoned).ShouldBeFalse("a temporary file older than a minute was abandoned by a stopped process");
        File.Exists(recent).ShouldBeTrue("another process sharing the store may be writing a recent temporary file");
    }

    private static string[] TemporaryFiles(string directory) => Directory.GetFiles(directory, ".*.tmp");
}
