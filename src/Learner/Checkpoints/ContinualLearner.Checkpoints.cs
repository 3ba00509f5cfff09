using System.Runtime.ExceptionServices;
using Confluent.Kafka;
using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Faults;
using ContinualServe.Learner.Replay;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Learner;

/// <summary>
/// The learner's crash safety: the checkpoint written before offsets are committed and restored on start,
/// the rollback after repeated non-finite losses, and the seek positions after a restart or a rebalance.
/// </summary>
public sealed partial class ContinualLearner
{
    private readonly Dictionary<TopicPartition, long> resumePositions = [];
    private LearnerCheckpointStore? checkpointStore;
    private TrainingLog? trainingLog;
    private LearnerCheckpoint? checkpoint;

    // Replay examples of the checkpoint that a strategy without a replay buffer carries unused into its own
    // checkpoints, so that a later restart with a replaying strategy gets them back.
    private List<ReplayExample> unusedReplay = [];
    private IReadOnlyDictionary<int, long> unusedReplaySeenByClass = new Dictionary<int, long>();
    private int consecutiveNonFiniteSteps;
    private int rollbacksSinceRound;
    private bool rollbackRequested;

    /// <summary>The checkpoint the learner would resume from now; null before <see cref="Start"/>.</summary>
    public LearnerCheckpoint? Checkpoint => checkpoint;

    private LearnerCheckpointStore Checkpoints => checkpointStore ??= new LearnerCheckpointStore(
        options.Checkpoint.ResolveDirectory(options.StoreDirectory), options.Checkpoint.RetainedCheckpoints, logger);

    /// <summary>
    /// Replaces the state built from the newest version with the newest intact checkpoint, or writes a first
    /// checkpoint when there is none, so that a rollback always has a target.
    /// </summary>
    private void RestoreCheckpoint()
    {
        if (options.Checkpoint.WriteTrainingLog)
        {
            trainingLog = new TrainingLog(Checkpoints.RootDirectory);
        }

        (LearnerCheckpoint Checkpoint, string Directory)? found = Checkpoints.TryLoadLatest();
        if (found is null)
        {
            // A checkpoint written now would record empty sums, and the next fit would drop every class trained so far.
            if (options.Trainer.IsAnalytic && latest!.Manifest.ExamplesTrained > 0)
            {
                throw new IncompatibleStateException(
                    $"Learner:Trainer:Strategy is Analytic, but {Checkpoints.RootDirectory} has no intact learner checkpoint with the running sums "
                    + $"behind version {latest.Number} ({latest.Manifest.ExamplesTrained} examples trained), and the head cannot be fitted again without them. "
                    + "Restore the checkpoint directory (Learner:Checkpoint:Directory), or start with an empty store directory (--store) "
                    + "and a new consumer group (--group) to train on the topic from its beginning.");
            }

            if (latest!.Manifest.ExamplesTrained > 0)
            {
                LogNoCheckpointForTrainedVersion(logger, Checkpoints.RootDirectory, latest.Number, latest.Manifest.ExamplesTrained);
            }

            trainingLog?.Truncate(0);
            SaveCheckpoint(latest.Manifest.TrainingOffsets);
            return;
        }

        (LearnerCheckpoint saved, string directory) = found.Value;
        if (saved.ModelVersion != latest!.Number)
        {
            // A crash between saving a version and its checkpoint leaves a newer version whose optimizer and
            // replay state are gone: continue from the checkpoint's version and train those records again.
            // A checkpoint written when a pinned version became the base is meant to be older than the newest version, but
            // a version created after it was published from that base and lost its checkpoint in such a crash.
            bool pinnedBase = saved.FromPin && latest.Manifest.CreatedAt <= saved.CreatedAt;
            if (store.TryLoad(saved.ModelVersion, out ModelVersion? matching) && pinnedBase)
            {
                LogResumingPinnedBase(logger, saved.Sequence, saved.ModelVersion, latest.Number);
                latest = matching;
            }
            else if (matching is not null)
            {
                LogResumingOlderVersion(logger, saved.ModelVersion, latest.Number);
                latest = matching;
            }
            else
            {
                // NOTE: the checkpoint's version was deleted or is corrupt; manifests after this restart count
                // examples and parents from the newest version instead.
                LogCheckpointVersionMissing(logger, saved.ModelVersion, latest.Number);
            }
        }

        LoadState(saved, directory);
        LogCheckpointRestored(logger, saved.Sequence, saved.ModelVersion, saved.ExamplesTrained, saved.Offsets.Count);
    }

    /// <summary>
    /// Reads the checkpoint's files on a thread-pool task, polling the consumer meanwhile once it exists, and loads them
    /// into the learner on the learner thread.
    /// </summary>
    private void LoadState(LearnerCheckpoint saved, string directory)
    {
        using CheckpointFiles files = WaitPolling(Task.Run(() => ReadCheckpointFiles(saved, directory)));
        ApplyState(saved, directory, files);
    }

    /// <summary>
    /// Reads the files of a checkpoint into memory. Touches no tensor, so it runs on a thread-pool task while the learner
    /// thread polls the consumer. An optimizer file that does not fit the trainer is kept as the problem that
    /// <see cref="ApplyState"/> raises after the weights load, so that weights of another shape are reported first.
    /// </summary>
    private CheckpointFiles ReadCheckpointFiles(LearnerCheckpoint saved, string directory)
    {
        var files = new CheckpointFiles { Weights = NativeBufferStream.ReadFile(Path.Combine(directory, LearnerCheckpoint.WeightsFileName)) };
        try
        {
            try
            {
                files.Optimizer = trainer!.ReadOptimizerState(Path.Combine(directory, LearnerCheckpoint.OptimizerFileName));
            }
            catch (InvalidDataException exception)
            {
                files.OptimizerProblem = exception;
            }

            files.Replay = ExampleFile.ReadReplay(Path.Combine(directory, LearnerCheckpoint.ReplayFileName));
            string teacherPath = Path.Combine(directory, LearnerCheckpoint.TeacherFileName);
            if (saved.TrainerProgress is not null && File.Exists(teacherPath))
            {
                files.Teacher = NativeBufferStream.ReadFile(teacherPath);
            }

            files.Holdouts = ExampleFile.ReadExamples(Path.Combine(directory, LearnerCheckpoint.HoldoutsFileName));
            return files;
        }
        catch
        {
            files.Dispose();
            throw;
        }
    }

    /// <summary>Loads a checkpoint's files, read by <see cref="ReadCheckpointFiles"/>, into the trainer and the learner's state.</summary>
    private void ApplyState(LearnerCheckpoint saved, string directory, CheckpointFiles files)
    {
        try
        {
            files.Weights.Position = 0;
            using var reader = new BinaryReader(files.Weights, System.Text.Encoding.UTF8, leaveOpen: true);
            trainer!.Module.load(reader);
        }
        catch (ArgumentException exception)
        {
            // TorchSharp names no shapes, so the message shows the model the checkpoint had to fit.
            ModelSpec spec = trainer!.Spec;
            throw new IncompatibleStateException(
                $"Learner checkpoint {directory} holds weights of another shape than the model of version {latest!.Number} in {store.RootDirectory} "
                + $"({spec.Architecture}, hidden sizes [{string.Join(", ", spec.HiddenSizes)}], {spec.ClassCount} classes): {exception.Message} "
                + "The checkpoint directory (Learner:Checkpoint:Directory) belongs to another store. Point it at this store's checkpoints, "
                + "or at an empty directory to start this store's learner state afresh.",
                exception);
        }

        LoadOptimizerState(saved, directory, files);
        List<ReplayExample> replay = files.Replay;
        int capacity = trainer.ReplayBuffer.Capacity;
        unusedReplay = [];
        unusedReplaySeenByClass = new Dictionary<int, long>();
        if (capacity == 0 && replay.Count > 0)
        {
            // Naive, LwF and a capacity of 0 keep no buffer, so every later checkpoint would otherwise save none.
            LogReplayKeptUnused(logger, options.Trainer.Strategy, options.Trainer.ReplayCapacity, replay.Count);
            unusedReplay = replay;
            unusedReplaySeenByClass = saved.ReplaySeenByClass ?? new Dictionary<int, long>();
            replay = [];
        }
        else if (replay.Count > capacity)
        {
            // The capacity is smaller than the checkpoint's buffer, so an evenly spaced subset is kept.
            LogReplayShrunk(logger, replay.Count, capacity);
            replay = Enumerable.Range(0, capacity).Select(index => replay[(int)((long)index * replay.Count / capacity)]).ToList();
        }

        trainer.ReplayBuffer.Restore(replay, Math.Max(saved.ReplaySeen, replay.Count), saved.ReplaySeenByClass);
        lock (statusLock)
        {
            status = status with { ReplayExamples = trainer.ReplayBuffer.Count };
        }

        if (saved.TrainerProgress is TrainerProgress progress)
        {
            trainer.Restore(progress, files.Teacher);
        }

        evaluator.Clear();
        foreach (LabeledExample example in files.Holdouts)
        {
            evaluator.Add(example);
        }

        matrix = Evaluation.AccuracyMatrix.FromSummary(saved.Evaluation);
        currentTask = saved.CurrentTask;
        // The log's tail after the checkpoint lists rounds that were not committed, whose records are read again. A learner
        // that kept no log wrote null, and the ids logged before it are all committed, so the log is kept whole.
        if (saved.TrainingLogBytes is long loggedBytes)
        {
            trainingLog?.Truncate(loggedBytes);
        }
        resumePositions.Clear();
        checkpoint = WithTopicResets(saved);
    }

    /// <summary>
    /// Loads the checkpoint's optimizer file. Adam starts over when the file contains analytic sums, because the strategy
    /// changed since the checkpoint. The analytic strategy cannot start over, because its head is the fit of every
    /// example behind the version, so a file without its sums ends the start.
    /// </summary>
    private void LoadOptimizerState(LearnerCheckpoint saved, string directory, CheckpointFiles files)
    {
        bool loaded;
        try
        {
            if (files.OptimizerProblem is { } problem)
            {
                ExceptionDispatchInfo.Throw(problem);
            }

            loaded = trainer!.LoadOptimizerState(files.Optimizer!);
        }
        catch (InvalidDataException exception) when (options.Trainer.IsAnalytic)
        {
            throw new IncompatibleStateException(
                $"Learner:Trainer:Strategy is Analytic, but learner checkpoint {directory} cannot be used: {exception.Message} "
                + $"The analytic head needs the running sums of every example behind version {saved.ModelVersion}. "
                + "Set the strategy that trained this store, or start with an empty store directory (--store) "
                + "and a new consumer group (--group) to train on the topic from its beginning.",
                exception);
        }

        if (!loaded)
        {
            LogOptimizerStartsOver(logger, directory, options.Trainer.Strategy);
        }
    }

    /// <summary>
    /// Writes the learner's state with <paramref name="offsets"/> and waits for it: the first checkpoint, written at
    /// start, the checkpoint of a pinned version that becomes the base, and the checkpoint of the live version after a
    /// rejected round. Promoted rounds write theirs through <see cref="StartPublishing"/>. The learner thread serializes
    /// the weights and the teacher into memory and lays out the optimizer file over the optimizer's tensors, because they
    /// are TorchSharp objects. A thread-pool task writes every file, flushes them and renames the directory into place,
    /// while the learner thread polls the consumer (from the consumer thread's start on). When
    /// <paramref name="keptAnalyticSums"/> is given, the checkpoint's optimizer file is a copy of it instead of the
    /// trainer's optimizer state.
    /// </summary>
    private void SaveCheckpoint(IReadOnlyList<TrainingOffset> offsets, bool fromPin = false, string? keptAnalyticSums = null)
    {
        LearnerCheckpoint metadata = CheckpointMetadata(offsets, matrix.ToSummary()) with
        {
            ModelVersion = latest!.Number,
            ExamplesTrained = latest.Manifest.ExamplesTrained,
            FromPin = fromPin,
        };
        ReplayExample[] replay = [.. CheckpointReplay()];
        List<LabeledExample> holdouts = evaluator.Tasks.SelectMany(evaluator.Examples).ToList();
        LearnerCheckpointStore checkpoints = Checkpoints;
        Action? beforeModuleWrite = FaultHooks.BeforeModuleFilesWrite;
        Action? beforeWrite = FaultHooks.BeforeCheckpointWrite;
        try
        {
            using ModuleFiles files = SerializeModuleFiles(withOptimizer: keptAnalyticSums is null);
            checkpoint = WaitPolling(Task.Run(() =>
            {
                string prepared = checkpoints.Prepare(directory =>
                {
                    beforeModuleWrite?.Invoke();
                    files.WriteTo(directory);
                });
                return checkpoints.Complete(prepared, metadata, directory =>
                {
                    beforeWrite?.Invoke();
                    WriteExampleFiles(directory, replay, holdouts);
                    if (keptAnalyticSums is not null)
                    {
                        File.Copy(keptAnalyticSums, Path.Combine(directory, LearnerCheckpoint.OptimizerFileName), overwrite: true);
                    }
                });
            }));
        }
        catch (IOException)
        {
            ReliabilityMetrics.LearnerCheckpoints.WithLabels("failed").Inc();
            throw;
        }

        ReliabilityMetrics.LearnerCheckpoints.WithLabels("written").Inc();
        consecutiveNonFiniteSteps = 0;
    }

    /// <summary>
    /// Serializes the trained weights and the teacher into memory, and lays out the optimizer file over the optimizer's
    /// tensors unless <paramref name="withOptimizer"/> is false, on the learner thread for a write on a thread-pool task.
    /// </summary>
    private ModuleFiles SerializeModuleFiles(bool withOptimizer)
    {
        var files = new ModuleFiles { Weights = new NativeBufferStream() };
        try
        {
            using (var writer = new BinaryWriter(files.Weights, System.Text.Encoding.UTF8, leaveOpen: true))
            {
                trainer!.Module.save(writer);
            }

            files.Optimizer = withOptimizer ? trainer.OptimizerStateImage() : null;
            files.Teacher = trainer.SerializeTeacher();
            return files;
        }
        catch
        {
            files.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes a checkpoint with the offsets reached under the round-write stall watch, so that a volume that blocks it
    /// makes the learner not ready with warning 267: the checkpoint after a rejected round and the one of a pinned base.
    /// </summary>
    private void SaveCheckpointUnderWatch(string operation, bool fromPin, string? keptAnalyticSums = null)
    {
        FileAccessWatchdog watchdog = RoundWriteWatchdog;
        watchdog.Start(operation, Checkpoints.RootDirectory);
        try
        {
            SaveCheckpoint(ReachedOffsets(), fromPin, keptAnalyticSums);
        }
        finally
        {
            watchdog.Finish();
        }
    }

    // Partitions not assigned now keep the offset of the previous checkpoint or of the last revocation.
    private TrainingOffset[] ReachedOffsets()
    {
        var reached = new Dictionary<(string Topic, int Partition), long>();
        foreach (TrainingOffset offset in checkpoint?.Offsets ?? [])
        {
            reached[(offset.Topic, offset.Partition)] = offset.Offset;
        }

        foreach ((TopicPartition partition, long position) in resumePositions.Concat(positions))
        {
            reached[(partition.Topic, partition.Partition.Value)] = position;
        }

        return reached.Select(pair => new TrainingOffset(pair.Key.Topic, pair.Key.Partition, pair.Value)).ToArray();
    }

    /// <summary>
    /// Builds a checkpoint's metadata from the learner's state now, without the version fields, and flushes the
    /// training log so that the metadata records its length.
    /// </summary>
    private LearnerCheckpoint CheckpointMetadata(IReadOnlyList<TrainingOffset> offsets, EvaluationSummary evaluation)
    {
        if (trainingLog is not null)
        {
            FaultHooks.BeforeTrainingLogFlush?.Invoke();

            // The log lives in the checkpoint directory, and an append would create it again in a replacement directory.
            Checkpoints.EnsureRootDirectoryUnchanged();
        }

        return new LearnerCheckpoint
        {
            CurrentTask = currentTask,
            Offsets = offsets,
            LastRecords = LastRecordsBefore(offsets),
            Evaluation = evaluation,
            ReplaySeen = trainer!.ReplayBuffer.Seen,
            ReplaySeenByClass = new Dictionary<int, long>(unusedReplay.Count > 0 ? unusedReplaySeenByClass : trainer.ReplayBuffer.SeenByClass),
            TrainerProgress = trainer.Progress,
            TrainingLogBytes = trainingLog?.Flush(),
        };
    }

    // The optimizer state and the LwF teacher change with every step, so both are written on the learner thread.
    private void WriteOptimizerAndTeacher(string directory)
    {
        trainer!.SaveOptimizerState(Path.Combine(directory, LearnerCheckpoint.OptimizerFileName));
        _ = trainer.SaveTeacher(Path.Combine(directory, LearnerCheckpoint.TeacherFileName));
    }

    /// <summary>Returns the replay examples a checkpoint saves: the buffer's, or the unused ones of a strategy without a buffer.</summary>
    private IReadOnlyList<ReplayExample> CheckpointReplay() => unusedReplay.Count > 0 ? unusedReplay : trainer!.ReplayBuffer.Examples;

    private static void WriteExampleFiles(string directory, IReadOnlyList<ReplayExample> replay, IReadOnlyList<LabeledExample> holdouts)
    {
        ExampleFile.WriteReplay(Path.Combine(directory, LearnerCheckpoint.ReplayFileName), replay);
        ExampleFile.WriteExamples(Path.Combine(directory, LearnerCheckpoint.HoldoutsFileName), holdouts);
    }

    /// <summary>
    /// Commits a round's offsets on the partitions still assigned. A failure (broker unreachable, group rebalanced)
    /// is logged and counted but not raised, because the checkpoint already contains the offsets and the next
    /// round commits newer ones.
    /// </summary>
    private void CommitOffsets(IConsumer<byte[]?, byte[]?> consumer, IReadOnlyList<TopicPartitionOffset> offsets)
    {
        List<TopicPartitionOffset> assigned = offsets.Where(offset => consumer.Assignment.Contains(offset.TopicPartition)).ToList();
        if (assigned.Count == 0)
        {
            return;
        }

        try
        {
            consumer.Commit(assigned);
        }
        catch (KafkaException exception) when (!exception.Error.IsFatal)
        {
            ReliabilityMetrics.KafkaCommitFailures.Inc();
            LogCommitFailed(logger, exception, exception.Error.Code, latest?.Number ?? 0);
        }
    }

    /// <summary>
    /// Commits the newest checkpoint's offsets after the checkpoint of a rejected round or of a pinned base, and when the
    /// learner stops. A kill after the checkpoint and before its commit leaves the group's committed offsets behind the
    /// checkpoint, and a restart that publishes no round before it stops would otherwise never commit them. A partition
    /// whose position is behind the checkpoint's offset is skipped, because then the checkpoint's offset is past the
    /// partition's end (a recreated topic) and was not read from.
    /// </summary>
    private void CommitCheckpointOffsets(IConsumer<byte[]?, byte[]?> consumer)
    {
        if (checkpoint is null)
        {
            return;
        }

        List<TopicPartitionOffset> reached = [];
        foreach (TrainingOffset offset in checkpoint.Offsets)
        {
            var partition = new TopicPartition(offset.Topic, offset.Partition);
            if (positions.TryGetValue(partition, out long position) && position >= offset.Offset)
            {
                reached.Add(new TopicPartitionOffset(partition, offset.Offset));
            }
        }

        CommitOffsets(consumer, reached);
    }

    /// <summary>Records a step's examples in the training log and requests a rollback after repeated non-finite losses.</summary>
    private void ObserveStep(IReadOnlyList<LabeledExample> batch, StepLosses losses)
    {
        trainingLog?.Record(batch);
        consecutiveNonFiniteSteps = losses.Skipped ? consecutiveNonFiniteSteps + 1 : 0;
        if (consecutiveNonFiniteSteps >= options.Checkpoint.MaxConsecutiveNonFiniteSteps)
        {
            rollbackRequested = true;
        }
    }

    /// <summary>Returns true while the newest training step had a non-finite loss, so that the round is deferred.</summary>
    private bool SkipRoundIfDiverged() => rollbackRequested || consecutiveNonFiniteSteps > 0;

    /// <summary>
    /// Rolls back to the checkpoint after repeated non-finite losses and seeks the consumer to the checkpoint's
    /// offsets to train those records again. Runs between records, so no record is half handled. After
    /// <see cref="CheckpointOptions.MaxRollbacks"/> rollbacks without a published round it pauses learning and
    /// reports itself diverged.
    /// </summary>
    private void RollBackIfRequested(IConsumer<byte[]?, byte[]?> consumer)
    {
        if (!rollbackRequested)
        {
            return;
        }

        CompletePublishing(consumer, wait: true);
        rollbackRequested = false;
        consecutiveNonFiniteSteps = 0;
        rollbacksSinceRound++;
        ReliabilityMetrics.LearnerRollbacks.Inc();
        (LearnerCheckpoint Checkpoint, string Directory) found = LoadRollbackCheckpoint();
        readGeneration++;
        pending.Clear();
        trainedSinceRound = 0;
        heldOutSinceRound = 0;
        lossSum = logitLossSum = labelLossSum = 0;
        lossSteps = 0;
        foreach (TopicPartition partition in consumer.Assignment)
        {
            long? offset = CheckpointOffset(partition);
            if (offset is null)
            {
                positions.Remove(partition);
                consumer.Seek(new TopicPartitionOffset(partition, Offset.Beginning));
                continue;
            }

            positions[partition] = offset.Value;
            consumer.Seek(new TopicPartitionOffset(partition, offset.Value));
        }

        bool diverged = rollbacksSinceRound > options.Checkpoint.MaxRollbacks;
        if (diverged)
        {
            // The pause marker is written before the status reports divergence, so a reader of the status also finds the marker.
            LogDiverged(logger, rollbacksSinceRound - 1, found.Checkpoint.ModelVersion);
            WriteDivergencePauseMarker();
            pausedByFile = true;
        }
        else
        {
            LogRolledBack(logger, options.Checkpoint.MaxConsecutiveNonFiniteSteps, found.Checkpoint.Sequence, found.Checkpoint.ModelVersion);
        }

        lock (statusLock)
        {
            status = status with { Rollbacks = status.Rollbacks + 1, IsDiverged = diverged };
        }

        // The marker's write and the checkpoint's load may have paused the assignment. A diverged learner keeps it paused.
        ResumeAfterWork(consumer);
        ReportReadiness();
    }

    /// <summary>Keeps the positions of revoked partitions, whose effect is in memory, for a later reassignment.</summary>
    private void RememberPositions()
    {
        readGeneration++;
        foreach ((TopicPartition partition, long position) in positions)
        {
            resumePositions[partition] = position;
        }

        positions.Clear();
    }

    /// <summary>
    /// Where to resume <paramref name="partition"/>: the position this process reached (its effect is in
    /// memory), else the checkpoint's offset, else null.
    /// </summary>
    private long? ResumeOffset(TopicPartition partition) =>
        resumePositions.TryGetValue(partition, out long position) ? position : CheckpointOffset(partition);

    private long? CheckpointOffset(TopicPartition partition) =>
        checkpoint is null ? null : RecordedOffset(checkpoint.Offsets, partition)?.Offset;

    [LoggerMessage(EventId = 242, Level = LogLevel.Information, Message = "Restored learner checkpoint {Sequence} (version {Version}, {ExamplesTrained} examples trained, offsets of {PartitionCount} partitions)")]
    private static partial void LogCheckpointRestored(ILogger logger, long sequence, long version, long examplesTrained, int partitionCount);

    [LoggerMessage(EventId = 243, Level = LogLevel.Warning, Message = "Version {NewestVersion} was saved without its checkpoint; continuing from version {Version} and training its records again")]
    private static partial void LogResumingOlderVersion(ILogger logger, long version, long newestVersion);

    [LoggerMessage(EventId = 285, Level = LogLevel.Information, Message = "Learner checkpoint {Sequence} was written when Learner:TrainFromPin made pinned version {Version} the base, so the learner continues from version {Version}, not from the newest version {NewestVersion}")]
    private static partial void LogResumingPinnedBase(ILogger logger, long sequence, long version, long newestVersion);

    [LoggerMessage(EventId = 244, Level = LogLevel.Warning, Message = "The checkpoint's model version {Version} is missing from the store or corrupt, so training resumes from the checkpoint's weights, optimizer state and offsets on top of the newest version, {NewestVersion}: the next versions name {NewestVersion} as their parent and count trained examples from its manifest")]
    private static partial void LogCheckpointVersionMissing(ILogger logger, long version, long newestVersion);

    [LoggerMessage(EventId = 245, Level = LogLevel.Warning, Message = "Offset commit failed with {Code} after version {Version}; the checkpoint keeps the offsets and the next round commits again")]
    private static partial void LogCommitFailed(ILogger logger, Exception exception, ErrorCode code, long version);

    [LoggerMessage(EventId = 217, Level = LogLevel.Warning, Message = "Learner checkpoint {Directory} contains analytic head sums and not Adam state, because the strategy changed to {Strategy}, so the optimizer starts with fresh moments")]
    private static partial void LogOptimizerStartsOver(ILogger logger, string directory, ReplayStrategy strategy);

    [LoggerMessage(EventId = 246, Level = LogLevel.Error, Message = "{Steps} consecutive training steps had a non-finite loss; rolled back to checkpoint {Sequence} (version {Version}) and re-reading its records")]
    private static partial void LogRolledBack(ILogger logger, int steps, long sequence, long version);

    [LoggerMessage(EventId = 215, Level = LogLevel.Warning, Message = "The checkpoint holds {Count} replay examples but the replay buffer now holds {Capacity} (Learner:Trainer:ReplayCapacity or the strategy changed); an evenly spaced subset is kept")]
    private static partial void LogReplayShrunk(ILogger logger, int count, int capacity);

    [LoggerMessage(EventId = 227, Level = LogLevel.Information, Message = "Strategy {Strategy} with Learner:Trainer:ReplayCapacity {Capacity} keeps no replay buffer, so the checkpoint keeps its {Count} replay examples unused until a restart with a replay buffer")]
    private static partial void LogReplayKeptUnused(ILogger logger, ReplayStrategy strategy, int capacity, int count);

    [LoggerMessage(EventId = 229, Level = LogLevel.Warning, Message = "Found no intact learner checkpoint in {Directory} although version {Version} was trained on {ExamplesTrained} examples, so the replay buffer, the holdout sets and the optimizer state start empty and reading resumes at the version's offsets. Point Learner:Checkpoint:Directory at this store's checkpoints to keep them")]
    private static partial void LogNoCheckpointForTrainedVersion(ILogger logger, string directory, long version, long examplesTrained);

    [LoggerMessage(EventId = 247, Level = LogLevel.Critical, Message = "Training diverged again after {Rollbacks} rollbacks; learning is paused at version {Version} until an operator resumes it through the management API")]
    private static partial void LogDiverged(ILogger logger, int rollbacks, long version);
}
