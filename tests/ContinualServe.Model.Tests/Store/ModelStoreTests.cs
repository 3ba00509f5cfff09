using ContinualServe.Model.Store;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Model.Tests.Store;

public sealed class ModelStoreTests
{
    [Fact]
    public void SaveNumbersVersionsFromOne()
    {
        ModelStore store = SmallModels.StoreWithVersions(3);

        store.ListVersionNumbers().ShouldBe([1L, 2L, 3L]);
    }

    // Replicas that downloaded the deleted version keep its weights under its number, so the number must not return.
    [Fact]
    public void DeletedNewestNumberIsNotReused()
    {
        ModelStore written = SmallModels.StoreWithVersions(3);
        Directory.Delete(written.VersionDirectory(3), recursive: true);
        var store = new ModelStore(written.RootDirectory);

        ModelVersion saved = SaveOne(store);

        saved.Number.ShouldBe(4);
        store.ListVersionNumbers().ShouldBe([1L, 2L, 4L]);
    }

    // A learner announces this number with its newest intact version, so it counts deleted and corrupt versions too.
    [Fact]
    public void HighestNumberCountsDeletedVersions()
    {
        ModelStore written = SmallModels.StoreWithVersions(3);
        Directory.Delete(written.VersionDirectory(3), recursive: true);
        var store = new ModelStore(written.RootDirectory);

        store.HighestVersionNumber().ShouldBe(3);
        File.Delete(Path.Combine(written.RootDirectory, ".highest-version"));
        store.HighestVersionNumber().ShouldBe(2);
    }

    [Fact]
    public void UnreadableHighestRecordIsLogged()
    {
        ModelStore written = SmallModels.StoreWithVersions(2);
        File.WriteAllText(Path.Combine(written.RootDirectory, ".highest-version"), "ten");
        var logger = new RecordingStoreLogger();
        var store = new ModelStore(written.RootDirectory, logger: logger);

        ModelVersion saved = SaveOne(store);

        saved.Number.ShouldBe(3);
        logger.Messages.ShouldContain(message => message.Contains("'ten' is not a version number", StringComparison.Ordinal));
        SaveOne(store).Number.ShouldBe(4);
    }

    [Fact]
    public void LoadedWeightsEqualSavedWeights()
    {
        var store = new ModelStore(SmallModels.TemporaryDirectory());
        torch.manual_seed(7);
        using nn.Module<Tensor, Tensor> saved = ModelFactory.Create(SmallModels.Spec);
        ModelVersion version = store.Save(SmallModels.Spec, saved, new ModelManifest { ExamplesTrained = 42 });

        store.TryLoad(version.Number, out ModelVersion? loaded).ShouldBeTrue();
        using nn.Module<Tensor, Tensor> module = loaded!.LoadModule(torch.CPU);
        using Tensor input = torch.rand(4, 16);
        using Tensor expected = saved.forward(input);
        using Tensor actual = module.forward(input);

        actual.allclose(expected).ShouldBeTrue();
        loaded.Manifest.ExamplesTrained.ShouldBe(42);
        loaded.Manifest.WeightsSha256.Length.ShouldBe(64);
    }

    // The learner reads the file on a thread-pool task and loads the module from memory on its own thread.
    [Fact]
    public void WeightsFromStreamEqualSavedWeights()
    {
        var store = new ModelStore(SmallModels.TemporaryDirectory());
        torch.manual_seed(7);
        using nn.Module<Tensor, Tensor> saved = ModelFactory.Create(SmallModels.Spec);
        ModelVersion version = store.Save(SmallModels.Spec, saved, new ModelManifest { ExamplesTrained = 42 });
        using var weights = new MemoryStream(File.ReadAllBytes(version.WeightsPath));
        weights.Position = weights.Length;

        using nn.Module<Tensor, Tensor> module = version.LoadModule(torch.CPU, weights);
        using Tensor input = torch.rand(4, 16);
        using Tensor expected = saved.forward(input);
        using Tensor actual = module.forward(input);

        actual.allclose(expected).ShouldBeTrue();
        weights.CanRead.ShouldBeTrue("the stream was closed");
    }

    [Fact]
    public void InstallReplacesCorruptCopy()
    {
        ModelStore source = SmallModels.StoreWithVersions(1);
        var replica = new ModelStore(SmallModels.TemporaryDirectory());
        string corrupt = replica.VersionDirectory(1);
        Directory.CreateDirectory(corrupt);
        File.WriteAllText(Path.Combine(corrupt, ModelStore.WeightsFileName), "truncated");
        string download = Path.Combine(replica.RootDirectory, ".download-test");
        Directory.CreateDirectory(download);
        foreach (string file in Directory.EnumerateFiles(source.VersionDirectory(1)))
        {
            File.Copy(file, Path.Combine(download, Path.GetFileName(file)));
        }

        replica.Install(download, 1);

        Directory.Exists(download).ShouldBeFalse();
        replica.TryLoad(1, out ModelVersion? installed).ShouldBeTrue();
        installed!.Manifest.WeightsSha256.ShouldBe(source.TryLoadLatest()!.Manifest.WeightsSha256);
    }

    [Fact]
    public void CorruptNewestVersionFallsBackToPrevious()
    {
        ModelStore store = SmallModels.StoreWithVersions(2);
        string weights = Path.Combine(store.VersionDirectory(2), ModelStore.WeightsFileName);
        byte[] content = File.ReadAllBytes(weights);
        content[^1] ^= 0xFF;
        File.WriteAllBytes(weights, content);

        ModelVersion? latest = store.TryLoadLatest();

        latest.ShouldNotBeNull();
        latest.Number.ShouldBe(1);
        store.TryLoad(2, out _).ShouldBeFalse();
    }

    [Fact]
    public void CorruptVersionIsLoggedOnce()
    {
        ModelStore written = SmallModels.StoreWithVersions(2);
        string weights = Path.Combine(written.VersionDirectory(2), ModelStore.WeightsFileName);
        byte[] content = File.ReadAllBytes(weights);
        content[^1] ^= 0xFF;
        File.WriteAllBytes(weights, content);
        var logger = new RecordingStoreLogger();
        var store = new ModelStore(written.RootDirectory, logger: logger);

        store.TryLoad(2, out _).ShouldBeFalse();
        store.TryLoadLatest().ShouldNotBeNull().Number.ShouldBe(1);
        store.TryLoad(2, out _).ShouldBeFalse();

        logger.Errors.ShouldBe([101], "a store polled every second logs each corrupt version once");

        // Each rewrite moves the file's time on, because two writes within the file system's timestamp granularity
        // look alike, and the store would take the version as unchanged since it was found corrupt.
        content[^1] ^= 0xFF;
        File.WriteAllBytes(weights, content);
        File.SetLastWriteTimeUtc(weights, DateTime.UtcNow.AddSeconds(2));
        store.TryLoad(2, out _).ShouldBeTrue();
        content[^1] ^= 0xFF;
        File.WriteAllBytes(weights, content);
        File.SetLastWriteTimeUtc(weights, DateTime.UtcNow.AddSeconds(4));
        store.TryLoad(2, out _).ShouldBeFalse();

        logger.Errors.ShouldBe([101, 101], "a version that loaded and then broke again is logged again");
    }

    // A server polls the store every second, and hashing a corrupt version on every poll would read a large model's
    // weights each time.
    [Fact]
    public void CorruptVersionRehashedAfterChange()
    {
        ModelStore written = SmallModels.StoreWithVersions(2);
        string weights = Path.Combine(written.VersionDirectory(2), ModelStore.WeightsFileName);
        byte[] content = File.ReadAllBytes(weights);
        content[^1] ^= 0xFF;
        File.WriteAllBytes(weights, content);
        var store = new ModelStore(written.RootDirectory);

        for (int poll = 0; poll < 5; poll++)
        {
            store.TryLoad(2, out _).ShouldBeFalse();
        }

        store.WeightsHashed.ShouldBe(1);

        content[^1] ^= 0xFF;
        File.WriteAllBytes(weights, content);
        File.SetLastWriteTimeUtc(weights, DateTime.UtcNow.AddSeconds(2));
        store.TryLoad(2, out _).ShouldBeTrue();
        store.WeightsHashed.ShouldBe(2);
    }

    // A repair that leaves the file's length and time as they were is still found, after the recheck age.
    [Fact]
    public void CorruptVersionRehashedAfterAge()
    {
        ModelStore written = SmallModels.StoreWithVersions(1);
        string weights = Path.Combine(written.VersionDirectory(1), ModelStore.WeightsFileName);
        byte[] content = File.ReadAllBytes(weights);
        DateTime writtenAt = File.GetLastWriteTimeUtc(weights);
        content[^1] ^= 0xFF;
        File.WriteAllBytes(weights, content);
        File.SetLastWriteTimeUtc(weights, writtenAt);
        var store = new ModelStore(written.RootDirectory) { CorruptVersionRecheckAge = TimeSpan.FromMilliseconds(200) };
        store.TryLoad(1, out _).ShouldBeFalse();

        content[^1] ^= 0xFF;
        File.WriteAllBytes(weights, content);
        File.SetLastWriteTimeUtc(weights, writtenAt);
        store.TryLoad(1, out _).ShouldBeFalse("the files look unchanged, so the version is not hashed again yet");
        Thread.Sleep(TimeSpan.FromMilliseconds(300));

        store.TryLoad(1, out _).ShouldBeTrue();
        store.WeightsHashed.ShouldBe(2);
    }

    [Fact]
    public void NewerThanSkipsOlderVersions()
    {
        ModelStore store = SmallModels.StoreWithVersions(3);
        string weights = Path.Combine(store.VersionDirectory(3), ModelStore.WeightsFileName);
        byte[] content = File.ReadAllBytes(weights);
        content[^1] ^= 0xFF;
        File.WriteAllBytes(weights, content);

        store.TryLoadLatest(newerThan: 3).ShouldBeNull();
        store.TryLoadLatest(newerThan: 2).ShouldBeNull();
        store.WeightsHashed.ShouldBe(1, "only version 3 is above version 2");
        store.TryLoadLatest(newerThan: 1).ShouldNotBeNull().Number.ShouldBe(2);
    }

    // A server lists and loads versions while the learner's retention deletes the oldest one. A version that disappears
    // during its load was deleted, not corrupted, so it must not raise the corrupt-version error.
    [Fact]
    public async Task VersionDeletedDuringLoadIsNotCorrupt()
    {
        ModelStore writer = SmallModels.StoreWithVersions(1, retained: 1);
        var logger = new RecordingStoreLogger();
        var reader = new ModelStore(writer.RootDirectory, logger: logger);
        torch.manual_seed(4);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallModels.Spec);
        using var saved = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        Task saving = Task.Run(() =>
        {
            for (int version = 0; version < 200 && !saved.IsCancellationRequested; version++)
            {
                writer.Save(SmallModels.Spec, module, new ModelManifest());
            }

            saved.Cancel();
        });
        int loads = 0;
        while (!saved.IsCancellationRequested)
        {
            foreach (long number in reader.ListVersionNumbers())
            {
                reader.TryLoad(number, out _);
                loads++;
            }
        }

        await saving;
        loads.ShouldBeGreaterThan(0);
        logger.Errors.ShouldBeEmpty("a version that retention deleted is not corrupt");
    }

    [Fact]
    public void TruncatedManifestIsRejected()
    {
        ModelStore store = SmallModels.StoreWithVersions(2);
        File.WriteAllText(Path.Combine(store.VersionDirectory(2), ModelStore.ManifestFileName), "{\"version\":");

        store.TryLoad(2, out _).ShouldBeFalse();
        store.TryLoadLatest()!.Number.ShouldBe(1);
    }

    [Fact]
    public void RetentionKeepsNewestVersions()
    {
        ModelStore store = SmallModels.StoreWithVersions(5, retained: 2);

        store.ListVersionNumbers().ShouldBe([4L, 5L]);
    }

    [Fact]
    public void LoweredRetentionLogsDeletedVersions()
    {
        ModelStore full = SmallModels.StoreWithVersions(5);
        var logger = new RecordingStoreLogger();
        var store = new ModelStore(full.RootDirectory, retainedVersions: 2, logger);
        torch.manual_seed(6);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallModels.Spec);

        store.Save(SmallModels.Spec, module, new ModelManifest());

        store.ListVersionNumbers().ShouldBe([5L, 6L]);
        logger.Messages.ShouldContain(message => message.StartsWith("Retention deleted versions 1, 2, 3, 4 from", StringComparison.Ordinal));
    }

    // A holder that never releases the version lock (a hung process on a shared volume) must not block a save in
    // retention for good, and with it the learner's next round. The save runs on its own thread, because flock cannot be
    // interrupted, and the test's hold ends in finally, which also frees a save still blocked.
    [Fact(Timeout = 60_000)]
    public async Task RetentionStopsWaitingForHeldLock()
    {
        ModelStore full = SmallModels.StoreWithVersions(2, retained: 2);
        var logger = new RecordingStoreLogger();
        var store = new ModelStore(full.RootDirectory, retainedVersions: 2, logger) { RetentionLockTimeout = TimeSpan.FromSeconds(1) };
        torch.manual_seed(8);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallModels.Spec);
        IDisposable otherHolder = full.LockVersions();
        try
        {
            Task<ModelVersion> saving = Task.Factory.StartNew(
                () => store.Save(SmallModels.Spec, module, new ModelManifest()), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

            (await Task.WhenAny(saving, Task.Delay(TimeSpan.FromSeconds(15)))).ShouldBe(saving, "the save waited for the version lock for 15 s");
            (await saving).Number.ShouldBe(3);
        }
        finally
        {
            otherHolder.Dispose();
        }

        store.ListVersionNumbers().ShouldBe([2L, 3L]);
        logger.Messages.ShouldContain(message => message.StartsWith($"Retention in {store.RootDirectory} runs without the version lock", StringComparison.Ordinal));
    }

    // Timeout.InfiniteTimeSpan is the usual .NET value for a wait without limit, so retention waits for the held lock
    // with it and does not run without the lock.
    [Fact(Timeout = 60_000)]
    public async Task InfiniteRetentionTimeoutWaitsForLock()
    {
        ModelStore full = SmallModels.StoreWithVersions(2, retained: 2);
        var logger = new RecordingStoreLogger();
        var store = new ModelStore(full.RootDirectory, retainedVersions: 2, logger) { RetentionLockTimeout = Timeout.InfiniteTimeSpan };
        torch.manual_seed(8);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallModels.Spec);
        IDisposable otherHolder = full.LockVersions();
        Task<ModelVersion> saving;
        try
        {
            saving = Task.Factory.StartNew(
                () => store.Save(SmallModels.Spec, module, new ModelManifest()), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

            (await Task.WhenAny(saving, Task.Delay(TimeSpan.FromSeconds(2)))).ShouldNotBe(saving, "the save finished while another holder kept the version lock");
        }
        finally
        {
            otherHolder.Dispose();
        }

        (await saving).Number.ShouldBe(3);
        store.ListVersionNumbers().ShouldBe([2L, 3L]);
        logger.Messages.ShouldNotContain(message => message.StartsWith($"Retention in {store.RootDirectory} runs without the version lock", StringComparison.Ordinal));
    }

    // A load that finds a file missing waits for the version lock before it decides whether retention deleted the version.
    [Fact(Timeout = 60_000)]
    public async Task LoadStopsWaitingForHeldLock()
    {
        ModelStore full = SmallModels.StoreWithVersions(1);
        var store = new ModelStore(full.RootDirectory, logger: new RecordingStoreLogger()) { RetentionLockTimeout = TimeSpan.FromSeconds(1) };
        File.Delete(Path.Combine(store.VersionDirectory(1), ModelStore.SpecFileName));
        IDisposable otherHolder = full.LockVersions();
        try
        {
            Task<bool> loading = Task.Factory.StartNew(
                () => store.TryLoad(1, out _), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

            (await Task.WhenAny(loading, Task.Delay(TimeSpan.FromSeconds(15)))).ShouldBe(loading, "the load waited for the version lock for 15 s");
            (await loading).ShouldBeFalse();
        }
        finally
        {
            otherHolder.Dispose();
        }
    }

    // A version with a file that cannot be read (here a directory in place of its manifest, which .NET reports as
    // UnauthorizedAccessException, as it does a file without read permission) is skipped like a corrupt one.
    [Fact]
    public void UnreadableVersionIsSkipped()
    {
        ModelStore store = SmallModels.StoreWithVersions(2);
        string manifest = Path.Combine(store.VersionDirectory(2), ModelStore.ManifestFileName);
        File.Delete(manifest);
        Directory.CreateDirectory(manifest);

        bool loaded = store.TryLoad(2, out ModelVersion? unreadable);

        loaded.ShouldBeFalse();
        unreadable.ShouldBeNull();
        store.TryLoadLatest().ShouldNotBeNull().Number.ShouldBe(1);
    }

    [Fact]
    public void RetentionKeepsPinnedVersion()
    {
        ModelStore store = SmallModels.StoreWithVersions(2, retained: 2);
        StoreControlFiles.WritePinnedVersion(store.RootDirectory, 1);
        torch.manual_seed(3);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallModels.Spec);

        store.Save(SmallModels.Spec, module, new ModelManifest());
        store.Save(SmallModels.Spec, module, new ModelManifest());

        store.ListVersionNumbers().ShouldBe([1L, 3L, 4L]);
        store.TryLoad(1, out _).ShouldBeTrue();
    }

    // A file system without flock support fails the version lock, as a directory in place of the lock file does here.
    // The version is already durable then, so the save succeeds and only retention waits for a later save.
    [Fact]
    public void SaveSucceedsWhenLockFails()
    {
        ModelStore full = SmallModels.StoreWithVersions(2);
        var logger = new RecordingStoreLogger();
        var store = new ModelStore(full.RootDirectory, retainedVersions: 1, logger);
        string lockFile = Path.Combine(store.RootDirectory, ".versions.lock");
        File.Delete(lockFile);
        Directory.CreateDirectory(lockFile);
        torch.manual_seed(8);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallModels.Spec);

        ModelVersion saved = store.Save(SmallModels.Spec, module, new ModelManifest());
        store.Save(SmallModels.Spec, module, new ModelManifest());

        saved.Number.ShouldBe(3);
        store.ListVersionNumbers().ShouldBe([4L], "retention runs without the lock, so the volume does not fill up");
        logger.Messages.Count(message => message.StartsWith("Retention in", StringComparison.Ordinal))
            .ShouldBe(1, "the same lock failure is logged once");
    }

    [Fact]
    public void AbandonedTemporaryDirectoryIsRemoved()
    {
        string root = SmallModels.TemporaryDirectory();
        string abandoned = TemporaryVersion(root, ".tmp-crashed", age: TimeSpan.FromMinutes(2));

        var store = new ModelStore(root);

        Directory.Exists(abandoned).ShouldBeFalse();
        store.ListVersionNumbers().ShouldBeEmpty();
    }

    [Fact]
    public void OpeningKeepsVersionInProgress()
    {
        string root = SmallModels.TemporaryDirectory();
        string inProgress = TemporaryVersion(root, ".tmp-writing", age: TimeSpan.FromSeconds(5));

        _ = new ModelStore(root);

        Directory.Exists(inProgress).ShouldBeTrue();
    }

    [Fact]
    public void WriterRemovesRecentTemporaryVersion()
    {
        string root = SmallModels.TemporaryDirectory();
        string recent = TemporaryVersion(root, ".tmp-writing", age: TimeSpan.FromSeconds(5));
        var store = new ModelStore(root);

        store.RemoveAllTemporaryVersions();

        Directory.Exists(recent).ShouldBeFalse();
    }

    [Fact]
    public void RecentFileKeepsOldDirectory()
    {
        string root = SmallModels.TemporaryDirectory();
        string inProgress = TemporaryVersion(root, ".tmp-writing", age: TimeSpan.FromMinutes(2));
        // A large weights file still being written: the directory is old, but the file changed just now.
        File.SetLastWriteTimeUtc(Path.Combine(inProgress, ModelStore.WeightsFileName), DateTime.UtcNow);

        _ = new ModelStore(root);

        Directory.Exists(inProgress).ShouldBeTrue();
    }

    // Creates a temporary version directory with a partial weights file, both last written age ago.
    private static string TemporaryVersion(string root, string name, TimeSpan age)
    {
        string directory = Path.Combine(root, name);
        Directory.CreateDirectory(directory);
        string weights = Path.Combine(directory, ModelStore.WeightsFileName);
        File.WriteAllText(weights, "partial");
        DateTime written = DateTime.UtcNow - age;
        File.SetLastWriteTimeUtc(weights, written);
        Directory.SetLastWriteTimeUtc(directory, written);
        return directory;
    }

    private static ModelVersion SaveOne(ModelStore store)
    {
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(SmallModels.Spec);
        return store.Save(SmallModels.Spec, module, new ModelManifest());
    }
}
