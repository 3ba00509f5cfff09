using ContinualServe.Learner.Checkpoints;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Checkpoints;

/// <summary>The checkpoint directory inside a model store that is renamed while the learner runs is not created again.</summary>
public sealed class CheckpointDirectoryIdentityTests : IDisposable
{
    private readonly TemporaryDirectory directory = new("continualserve-checkpoint-identity-");

    public void Dispose() => directory.Dispose();

    [Fact]
    public void PrepareAfterStoreRenameThrows()
    {
        string storeDirectory = Path.Combine(directory.Path, "store");
        var store = new LearnerCheckpointStore(Path.Combine(storeDirectory, "learner-checkpoint"), 2, NullLogger.Instance);
        store.Save(Metadata(), WriteData);
        Directory.Move(storeDirectory, storeDirectory + ".moved");

        var exception = Should.Throw<StoreDirectoryChangedException>(() => store.Prepare(WriteData));

        exception.Message.ShouldContain(store.RootDirectory);
        Directory.Exists(storeDirectory).ShouldBeFalse();
    }

    [Fact]
    public void CompleteIntoReplacementDirectoryThrows()
    {
        var store = new LearnerCheckpointStore(Path.Combine(directory.Path, "checkpoints"), 2, NullLogger.Instance);
        string prepared = store.Prepare(WriteData);
        Directory.Move(store.RootDirectory, store.RootDirectory + ".moved");
        Directory.CreateDirectory(store.RootDirectory);
        string replacementPrepared = Path.Combine(store.RootDirectory, Path.GetFileName(prepared));
        Directory.CreateDirectory(replacementPrepared);
        WriteData(replacementPrepared);

        Should.Throw<StoreDirectoryChangedException>(() => store.Complete(replacementPrepared, Metadata(), writeFiles: null));

        Directory.GetDirectories(store.RootDirectory, "c*").ShouldBeEmpty();
    }

    private static LearnerCheckpoint Metadata() => new() { ModelVersion = 1, Offsets = [new TrainingOffset("topic", 0, 10)] };

    private static void WriteData(string directory) => File.WriteAllText(Path.Combine(directory, "data.bin"), "data");
}
