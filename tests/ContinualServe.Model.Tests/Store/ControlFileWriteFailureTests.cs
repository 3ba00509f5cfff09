using ContinualServe.Model.Store;
using Shouldly;
using Xunit;

namespace ContinualServe.Model.Tests.Store;

/// <summary>
/// Writes of the pin, the pause marker and the golden set that fail. Some fail as on a full or read-only volume, because
/// a directory takes the place of the file being replaced, which makes the rename fail even for root. Others fail
/// because the store directory was removed or replaced.
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

    // Each write of a control file, by the store directory's path.
    public static TheoryData<string> Writes => new() { "pin", "pause", "golden set" };

    [Theory]
    [MemberData(nameof(Writes))]
    public void WriteIntoRemovedDirectoryFails(string write)
    {
        string directory = SmallModels.TemporaryDirectory();
        Directory.Delete(directory);

        var exception = Should.Throw<DirectoryNotFoundException>(() => WriteByPath(write, directory));

        exception.Message.ShouldContain($"the directory '{directory}' does not exist");
        Directory.Exists(directory).ShouldBeFalse("a write must not create a removed store directory again");
    }

    [Theory]
    [MemberData(nameof(Writes))]
    public void WriteIntoReplacedStoreFails(string write)
    {
        var store = new ModelStore(SmallModels.TemporaryDirectory());
        Directory.Move(store.RootDirectory, store.RootDirectory + ".moved");
        Directory.CreateDirectory(store.RootDirectory);

        var exception = Should.Throw<StoreDirectoryChangedException>(() => WriteByStore(write, store));

        exception.Message.ShouldContain("replaced by another directory");
        Directory.GetFileSystemEntries(store.RootDirectory).ShouldBeEmpty();
    }

    [Theory]
    [MemberData(nameof(Writes))]
    public void WriteIntoRemovedStoreFails(string write)
    {
        var store = new ModelStore(SmallModels.TemporaryDirectory());
        Directory.Delete(store.RootDirectory, recursive: true);

        var exception = Should.Throw<StoreDirectoryChangedException>(() => WriteByStore(write, store));

        exception.Message.ShouldContain("no longer exists");
        Directory.Exists(store.RootDirectory).ShouldBeFalse();
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

    private static void WriteByPath(string write, string directory)
    {
        switch (write)
        {
            case "pin":
                StoreControlFiles.WritePinnedVersion(directory, 3);
                break;
            case "pause":
                StoreControlFiles.SetLearningPaused(directory, paused: true);
                break;
            default:
                new GoldenSet { Examples = [new GoldenExample(1, new float[16])] }.Save(directory);
                break;
        }
    }

    private static void WriteByStore(string write, ModelStore store)
    {
        switch (write)
        {
            case "pin":
                StoreControlFiles.WritePinnedVersion(store, 3);
                break;
            case "pause":
                StoreControlFiles.SetLearningPaused(store, paused: true);
                break;
            default:
                new GoldenSet { Examples = [new GoldenExample(1, new float[16])] }.Save(store);
                break;
        }
    }

    private static string[] TemporaryFiles(string directory) => Directory.GetFiles(directory, ".*.tmp");
}
