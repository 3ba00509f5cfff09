using ContinualServe.Model;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Server.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Hosting;

/// <summary>What a server's store polls read while the newest version, or the pinned one, is corrupt.</summary>
public sealed class CorruptVersionPollTests : IDisposable
{
    private readonly string directory = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    // Hashing on every poll would read the corrupt version and then the live version's weights, two models a second
    // for as long as the corrupt version stays in the store.
    [Fact]
    public void CorruptNewestHashedOnce()
    {
        CorruptStore(versions: 2, corrupt: 2);
        using var live = new LiveModel();
        ModelSwapper swapper = Swapper(live);

        swapper.TrySwapToLatest().ShouldBeTrue();
        for (int poll = 0; poll < 10; poll++)
        {
            swapper.TrySwapToLatest().ShouldBeFalse();
        }

        live.CurrentVersion.ShouldBe(1);
        swapper.Store.WeightsHashed.ShouldBe(2, "version 2 found corrupt and version 1 loaded, then nothing read again");
    }

    [Fact]
    public void CorruptPinHashedOnce()
    {
        CorruptStore(versions: 2, corrupt: 2);
        StoreControlFiles.WritePinnedVersion(directory, 2);
        using var live = new LiveModel();
        ModelSwapper swapper = Swapper(live);

        for (int poll = 0; poll < 10; poll++)
        {
            swapper.TrySwapToLatest().ShouldBeFalse();
        }

        live.CurrentVersion.ShouldBeNull();
        swapper.Store.WeightsHashed.ShouldBe(1);
    }

    // Weights that do not fit their spec pass the hash check. Before the store checked tensor shapes, loading them threw
    // inside every poll, and the server never fell back to the version before.
    [Fact]
    public void MisfitNewestFallsBackToPrevious()
    {
        var store = new ModelStore(directory, retainedVersions: 100);
        RunningServer.SaveVersion(store, 1);
        RunningServer.SaveVersion(store, 2);
        ModelSpec wider = RunningServer.Spec with { HiddenSizes = [12] };
        File.WriteAllText(Path.Combine(store.VersionDirectory(2), ModelStore.SpecFileName), wider.ToJson());
        using var live = new LiveModel();
        ModelSwapper swapper = Swapper(live);

        swapper.TrySwapToLatest().ShouldBeTrue();
        for (int poll = 0; poll < 10; poll++)
        {
            swapper.TrySwapToLatest().ShouldBeFalse();
        }

        live.CurrentVersion.ShouldBe(1);
        swapper.Store.WeightsHashed.ShouldBe(2, "version 2 found misfit and version 1 loaded, then nothing read again");
    }

    private ModelSwapper Swapper(LiveModel live) => new(
        live,
        Options.Create(new ServerOptions { ModelName = RunningServer.Spec.Name, StoreDirectory = directory, Device = "cpu", IntraOpThreads = 0 }),
        NullLogger<ModelSwapper>.Instance);

    private void CorruptStore(int versions, long corrupt)
    {
        var store = new ModelStore(directory, retainedVersions: 100);
        for (int version = 1; version <= versions; version++)
        {
            RunningServer.SaveVersion(store, version);
        }

        string weights = Path.Combine(store.VersionDirectory(corrupt), ModelStore.WeightsFileName);
        byte[] bytes = File.ReadAllBytes(weights);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.WriteAllBytes(weights, bytes);
    }
}
