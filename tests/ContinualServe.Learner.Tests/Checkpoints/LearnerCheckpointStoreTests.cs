using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Checkpoints;

public sealed class LearnerCheckpointStoreTests : IDisposable
{
    private readonly TemporaryDirectory directory = new("continualserve-checkpoints-");

    public void Dispose() => directory.Dispose();

    [Fact]
    public void NewestIntactCheckpointIsLoaded()
    {
        var store = new LearnerCheckpointStore(directory.Path, retainedCheckpoints: 2, NullLogger.Instance);
        store.Save(Metadata(offset: 10), WriteData("first"));
        store.Save(Metadata(offset: 20), WriteData("second"));

        (LearnerCheckpoint checkpoint, string path) = store.TryLoadLatest()!.Value;

        checkpoint.Sequence.ShouldBe(2);
        checkpoint.Offsets.Single().Offset.ShouldBe(20);
        File.ReadAllText(Path.Combine(path, "data.bin")).ShouldBe("second");
    }

    [Fact]
    public void TrainerStateRoundTrips()
    {
        var store = new LearnerCheckpointStore(directory.Path, retainedCheckpoints: 2, NullLogger.Instance);
        LearnerCheckpoint metadata = Metadata(offset: 10) with
        {
            ReplaySeenByClass = new Dictionary<int, long> { [0] = 600, [7] = 12 },
            TrainerProgress = new TrainerProgress(2, [0, 1, 2, 3], [0, 1]),
        };
        store.Save(metadata, WriteData("first"));

        LearnerCheckpoint checkpoint = store.TryLoadLatest()!.Value.Checkpoint;

        checkpoint.ReplaySeenByClass.ShouldNotBeNull();
        checkpoint.ReplaySeenByClass[0].ShouldBe(600);
        checkpoint.ReplaySeenByClass[7].ShouldBe(12);
        checkpoint.TrainerProgress.ShouldNotBeNull();
        checkpoint.TrainerProgress.LastTask.ShouldBe(2);
        checkpoint.TrainerProgress.SeenClasses.ShouldBe([0, 1, 2, 3]);
        checkpoint.TrainerProgress.TeacherClasses.ShouldBe([0, 1]);
    }

    [Fact]
    public void CorruptCheckpointFallsBackToOlder()
    {
        var store = new LearnerCheckpointStore(directory.Path, retainedCheckpoints: 2, NullLogger.Instance);
        store.Save(Metadata(offset: 10), WriteData("first"));
        store.Save(Metadata(offset: 20), WriteData("second"));
        string newest = Directory.EnumerateDirectories(directory.Path, "c*").Order(StringComparer.Ordinal).Last();
        File.WriteAllText(Path.Combine(newest, "data.bin"), "SECOND");

        LearnerCheckpoint checkpoint = store.TryLoadLatest()!.Value.Checkpoint;

        checkpoint.Sequence.ShouldBe(1);
        checkpoint.Offsets.Single().Offset.ShouldBe(10);
    }

    [Fact]
    public void RetentionKeepsNewestCheckpoints()
    {
        var store = new LearnerCheckpointStore(directory.Path, retainedCheckpoints: 2, NullLogger.Instance);
        for (int round = 1; round <= 5; round++)
        {
            store.Save(Metadata(offset: round), WriteData("round"));
        }

        Directory.EnumerateDirectories(directory.Path, "c*").Select(Path.GetFileName).Order(StringComparer.Ordinal)
            .ShouldBe(["c000000000004", "c000000000005"]);
    }

    [Fact]
    public void RetentionKeepsOlderVersionCheckpoint()
    {
        var store = new LearnerCheckpointStore(directory.Path, retainedCheckpoints: 2, NullLogger.Instance);
        store.Save(Metadata(offset: 10) with { ModelVersion = 1 }, WriteData("version 1"));

        // Version 2's round, then three rejected rounds, each with a checkpoint of the live version 2.
        for (int round = 1; round <= 4; round++)
        {
            store.Save(Metadata(offset: 10 + round) with { ModelVersion = 2 }, WriteData("version 2"));
        }

        (LearnerCheckpoint checkpoint, string path) = store.TryLoadForVersion(1).ShouldNotBeNull();
        checkpoint.Sequence.ShouldBe(1);
        File.ReadAllText(Path.Combine(path, "data.bin")).ShouldBe("version 1");
        Directory.EnumerateDirectories(directory.Path, "c*").Select(Path.GetFileName).Order(StringComparer.Ordinal)
            .ShouldBe(["c000000000001", "c000000000004", "c000000000005"]);
    }

    [Fact]
    public void PreparedCheckpointCompletesWithLaterFiles()
    {
        var store = new LearnerCheckpointStore(directory.Path, retainedCheckpoints: 2, NullLogger.Instance);
        string prepared = store.Prepare(WriteData("early"));
        store.TryLoadLatest().ShouldBeNull();

        store.Complete(prepared, Metadata(offset: 30), path => File.WriteAllText(Path.Combine(path, "late.bin"), "late"));
        (LearnerCheckpoint checkpoint, string path) = store.TryLoadLatest()!.Value;

        checkpoint.Sequence.ShouldBe(1);
        checkpoint.Offsets.Single().Offset.ShouldBe(30);
        checkpoint.FileSha256.Keys.ShouldBe(["data.bin", "late.bin"]);
        File.ReadAllText(Path.Combine(path, "data.bin")).ShouldBe("early");
        Directory.Exists(prepared).ShouldBeFalse();
    }

    [Fact]
    public void AbandonedPreparationLeavesNoCheckpoint()
    {
        var store = new LearnerCheckpointStore(directory.Path, retainedCheckpoints: 2, NullLogger.Instance);
        string prepared = store.Prepare(WriteData("never completed"));

        LearnerCheckpointStore.Abandon(prepared);

        Directory.Exists(prepared).ShouldBeFalse();
        store.TryLoadLatest().ShouldBeNull();
    }

    [Fact]
    public void FailedCompletionDeletesPreparation()
    {
        var store = new LearnerCheckpointStore(directory.Path, retainedCheckpoints: 2, NullLogger.Instance);
        string prepared = store.Prepare(WriteData("first"));

        Should.Throw<IOException>(() => store.Complete(prepared, Metadata(offset: 1), _ => throw new IOException("disk full")));

        Directory.Exists(prepared).ShouldBeFalse();
        store.TryLoadLatest().ShouldBeNull();
    }

    [Fact]
    public void AbandonedTemporaryDirectoryIsRemoved()
    {
        Directory.CreateDirectory(Path.Combine(directory.Path, ".tmp-abandoned"));

        var store = new LearnerCheckpointStore(directory.Path, retainedCheckpoints: 2, NullLogger.Instance);

        Directory.Exists(Path.Combine(directory.Path, ".tmp-abandoned")).ShouldBeFalse();
        store.TryLoadLatest().ShouldBeNull();
    }

    [Fact]
    public void TrainingLogTruncatesToCheckpointLength()
    {
        var log = new TrainingLog(directory.Path);
        log.Record([Example("a"), Example("b")]);
        long checkpointed = log.Flush();
        log.Record([Example("c")]);
        log.Flush();

        log.Truncate(checkpointed);
        log.Record([Example("d")]);
        log.Truncate(checkpointed);

        TrainingLog.ReadIds(log.Path).ShouldBe(["a", "b"]);
    }

    [Fact]
    public void VerifiedFileChecksItsHash()
    {
        var store = new LearnerCheckpointStore(directory.Path, retainedCheckpoints: 2, NullLogger.Instance);
        LearnerCheckpoint checkpoint = store.Save(Metadata(offset: 10), WriteData("first"));

        string path = store.VerifiedFile(checkpoint, "data.bin");

        File.ReadAllText(path).ShouldBe("first");
        Should.Throw<InvalidDataException>(() => store.VerifiedFile(checkpoint, "missing.bin")).Message.ShouldContain("records no file missing.bin");

        // Same length, other bytes: only the hash detects the change.
        File.WriteAllText(path, "FIRST");
        Should.Throw<InvalidDataException>(() => store.VerifiedFile(checkpoint, "data.bin")).Message.ShouldContain(path);
    }

    private static LearnerCheckpoint Metadata(long offset) => new()
    {
        ModelVersion = 1,
        Offsets = [new TrainingOffset("topic", 0, offset)],
    };

    private static Action<string> WriteData(string content) =>
        path => File.WriteAllText(Path.Combine(path, "data.bin"), content);

    private static LabeledExample Example(string id) => new(id, 1, 0, [0f]);
}
