using ContinualServe.Model.Store;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Model.Tests.Store;

/// <summary>A store whose root directory is removed, renamed or replaced while it is open writes nothing more.</summary>
public sealed class StoreDirectoryIdentityTests
{
    [Fact]
    public void SaveAfterRenameThrowsAndRecreatesNothing()
    {
        ModelStore store = SmallModels.StoreWithVersions(2);
        string moved = store.RootDirectory + ".moved";
        Directory.Move(store.RootDirectory, moved);

        var exception = Should.Throw<StoreDirectoryChangedException>(() => SaveOne(store));

        exception.Directory.ShouldBe(store.RootDirectory);
        exception.Message.ShouldContain(store.RootDirectory);
        exception.Message.ShouldContain("no longer exists");
        Directory.Exists(store.RootDirectory).ShouldBeFalse();
        Directory.GetDirectories(moved, "v*").Length.ShouldBe(2);
    }

    [Fact]
    public void SaveIntoReplacementDirectoryThrows()
    {
        ModelStore store = SmallModels.StoreWithVersions(2);
        Directory.Move(store.RootDirectory, store.RootDirectory + ".moved");
        Directory.CreateDirectory(store.RootDirectory);

        var exception = Should.Throw<StoreDirectoryChangedException>(() => SaveOne(store));

        exception.Message.ShouldContain("replaced by another directory");
        store.ListVersionNumbers().ShouldBeEmpty();
        Directory.GetFileSystemEntries(store.RootDirectory).ShouldBeEmpty();
    }

    [Fact]
    public void SaveAfterReplacementByFileThrows()
    {
        ModelStore store = SmallModels.StoreWithVersions(1);
        Directory.Move(store.RootDirectory, store.RootDirectory + ".moved");
        File.WriteAllText(store.RootDirectory, "a file where the store directory was");

        var exception = Should.Throw<StoreDirectoryChangedException>(() => SaveOne(store));

        exception.Message.ShouldContain("replaced by a file that is not a directory");
    }

    [Fact]
    public void SaveAfterRemovalThrows()
    {
        ModelStore store = SmallModels.StoreWithVersions(1);
        Directory.Delete(store.RootDirectory, recursive: true);

        Should.Throw<StoreDirectoryChangedException>(() => SaveOne(store));

        Directory.Exists(store.RootDirectory).ShouldBeFalse();
    }

    [Fact]
    public void InstallIntoReplacementDirectoryThrows()
    {
        ModelStore store = SmallModels.StoreWithVersions(1);
        Directory.Move(store.RootDirectory, store.RootDirectory + ".moved");
        Directory.CreateDirectory(store.RootDirectory);
        string download = Path.Combine(store.RootDirectory, ".download-test");
        Directory.CreateDirectory(download);

        Should.Throw<StoreDirectoryChangedException>(() => store.Install(download, 2));

        Directory.Exists(download).ShouldBeTrue();
        store.ListVersionNumbers().ShouldBeEmpty();
    }

    [Fact]
    public void StoresSharingDirectoryKeepSaving()
    {
        ModelStore learner = SmallModels.StoreWithVersions(1);
        var server = new ModelStore(learner.RootDirectory);

        SaveOne(learner);
        server.EnsureRootDirectoryUnchanged();

        server.TryLoadLatest()!.Number.ShouldBe(2);
    }

    [Fact]
    public void StoreOpenedAfterReplacementAcceptsIt()
    {
        ModelStore store = SmallModels.StoreWithVersions(1);
        Directory.Move(store.RootDirectory, store.RootDirectory + ".moved");
        Directory.CreateDirectory(store.RootDirectory);
        var reopened = new ModelStore(store.RootDirectory);

        SaveOne(reopened).Number.ShouldBe(1);
        Should.Throw<StoreDirectoryChangedException>(store.EnsureRootDirectoryUnchanged);
    }

    private static ModelVersion SaveOne(ModelStore store)
    {
        torch.manual_seed(11);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallModels.Spec);
        return store.Save(SmallModels.Spec, module, new ModelManifest());
    }
}
