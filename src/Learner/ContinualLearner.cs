using System.Diagnostics;
using Confluent.Kafka;
using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Evaluation;
using ContinualServe.Learner.Faults;
using ContinualServe.Learner.Holdout;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Promotion;
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
/// The learner: consumes labeled examples from Kafka, routes a fixed fraction to holdout, and trains a copy
/// of the model with replay. In rounds it evaluates every seen task, saves a version to the model store,
/// commits the offsets the version includes, and announces it. A round whose candidate the promotion gate
/// rejects saves no version, and its offsets are committed after a learner checkpoint of the live version.
/// Offsets are committed only after the checkpoint that contains their effect is on disk, so a crash re-reads
/// uncommitted records and never skips one. A restart seeks to the checkpoint's offsets, which a promoted
/// version's manifest records too.
/// All Kafka work and training run on one dedicated thread. Decoding records (ContinualLearner.Reading.cs) and
/// writing a round's version and checkpoint to disk (ContinualLearner.Publishing.cs) run on thread-pool tasks.
/// </summary>
public sealed partial class ContinualLearner : IDisposable
{
    private static readonly TimeSpan SlowLeaveThreshold = TimeSpan.FromSeconds(1);

    private readonly LearnerOptions options;
    private readonly KafkaClientProperties kafkaProperties;
    private readonly ILogger logger;
    private readonly ModelStore store;
    private readonly HoldoutRouter holdoutRouter;
    private readonly HoldoutEvaluator evaluator;
    private readonly Dictionary<TopicPartition, long> positions = [];
    private readonly HashSet<TopicPartition> warnedNewPartitions = [];
    private readonly List<LabeledExample> pending = [];
    private readonly Lock statusLock = new();
    private readonly ManualResetEventSlim stopped = new(initialState: true);
    private Thread? thread;
    private CancellationTokenSource? stopping;
    private LearnerStatus status = new();
    private AccuracyMatrix matrix = new();
    private ModelVersion? latest;
    private ContinualTrainer? trainer;

    // Built in Start from the newest stored version's spec, which may differ from options.InitialSpec.
    private ExampleRecordCodec? codec;
    private PromotionGate? promotionGate;
    private Device device = torch.CPU;
    private int currentTask;
    private long trainedSinceRound;
    private long heldOutSinceRound;
    private double lossSum;
    private double logitLossSum;
    private double labelLossSum;
    private int lossSteps;
    private long invalidCount;
    private DateTime lastRecordAt = DateTime.UtcNow;
    private volatile bool disposed;

    // The writer locks of the store and of the checkpoint directory, held from the start until the learner thread ends.
    private FileStream? storeLock;
    private FileStream? checkpointLock;

    /// <param name="options">The learner's settings.</param>
    /// <param name="loggerFactory">Creates the learner's and the model store's loggers.</param>
    /// <param name="kafkaProperties">Extra librdkafka properties of every Kafka client the learner builds (security, client id); none when null.</param>
    public ContinualLearner(LearnerOptions options, ILoggerFactory loggerFactory, KafkaClientProperties? kafkaProperties = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        this.options = options;
        this.kafkaProperties = kafkaProperties ?? KafkaClientProperties.None;
        logger = loggerFactory.CreateLogger<ContinualLearner>();
        store = new ModelStore(options.StoreDirectory, options.RetainedVersions, loggerFactory.CreateLogger<ModelStore>());
        holdoutRouter = new HoldoutRouter(options.HoldoutFraction);
        evaluator = new HoldoutEvaluator(options.MaxHoldoutPerTask);
    }

    /// <summary>Raised on the learner thread after a version is saved and its offsets committed.</summary>
    public event Action<ModelVersion>? VersionPublished;

    public ModelStore Store => store;

    /// <summary>Failures and delays that tests inject. No hook is set outside tests.</summary>
    internal LearnerFaultHooks FaultHooks { get; } = new();

    /// <summary>
    /// Raised on the learner thread, after it stopped, when an error that the learner does not handle ended it: a store or
    /// checkpoint write that failed (a full or read-only volume), a fatal Kafka error, or any other exception.
    /// </summary>
    public event Action<Exception>? Failed;

    /// <summary>The error that ended the learner thread, or null while it runs or after a requested stop.</summary>
    public Exception? Failure { get; private set; }

    public LearnerStatus Status
    {
        get
        {
            lock (statusLock)
            {
                return status;
            }
        }
    }

    /// <summary>True once the learner thread has ended: after a stop, or after an error ended it. False before the start.</summary>
    public bool HasStopped => thread is not null && stopped.IsSet;

    /// <summary>
    /// Loads (or creates) the starting version and starts the consumer thread. Returns the version the
    /// learner starts from, which a co-located server can serve at once.
    /// </summary>
    /// <exception cref="InvalidOperationException">The learner was started before, and is running or has stopped.</exception>
    /// <exception cref="ObjectDisposedException">The learner was disposed.</exception>
    /// <exception cref="IOException">The store or checkpoint directory cannot be written, such as on a read-only volume.</exception>
    /// <exception cref="UnauthorizedAccessException">This process has no write permission on the store or checkpoint directory.</exception>
    /// <exception cref="StoreInUseException">Another learner runs on the same store directory.</exception>
    public ModelVersion Start()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (thread is not null && stopped.IsSet)
        {
            throw new InvalidOperationException("The learner has stopped and cannot be started again. Create a new ContinualLearner on the same options to continue.");
        }

        if (thread is not null)
        {
            throw new InvalidOperationException("The learner is already running.");
        }

        device = DeviceSelector.Resolve(options.Device);

        // A start on a read-only volume writes nothing when the store has a checkpoint. Without this check it would join the
        // group, report ready and train a whole round before its first write failed.
        WritableDirectory.Check(store.RootDirectory);
        WritableDirectory.Check(Checkpoints.RootDirectory);
        storeLock = StoreWriterLock.Acquire(store.RootDirectory, "model store");
        try
        {
            // Learners on two stores but one checkpoint directory would restore and overwrite each other's checkpoints. A
            // checkpoint directory that is the store itself is covered by the store's lock.
            if (!string.Equals(Path.GetFullPath(Checkpoints.RootDirectory), Path.GetFullPath(store.RootDirectory), StringComparison.Ordinal))
            {
                checkpointLock = StoreWriterLock.Acquire(Checkpoints.RootDirectory, "checkpoint directory");
            }

            StartThread();
        }
        catch
        {
            ReleaseStoreLock();
            throw;
        }

        return latest!;
    }

    // Loads the starting version, restores the checkpoint and starts the learner thread. Runs under the store's lock.
    private void StartThread()
    {
        // The lock makes this learner the store's only writer, so a temporary version left by its last run is abandoned
        // whatever its age.
        store.RemoveAllTemporaryVersions();
        latest = store.TryLoadLatest() ?? SaveInitialVersion();
        if (options.Trainer.IsAnalytic && ContinualTrainer.AnalyticModelError(latest.Spec) is { } modelError)
        {
            throw new IncompatibleStateException(
                $"{modelError} The model is version {latest.Number} in {store.RootDirectory}, whose spec replaces Learner:InitialSpec. "
                + "Start the analytic strategy with an empty store directory (--store), or keep the strategy that trained this store.");
        }

        matrix = AccuracyMatrix.FromSummary(latest.Manifest.Evaluation);
        currentTask = matrix.Tasks.Count > 0 ? matrix.Tasks[^1] : 0;
        using (nn.Module<Tensor, Tensor> weights = latest.LoadModule(device))
        {
            trainer = new ContinualTrainer(latest.Spec, weights, device, options.Trainer);
        }

        RestoreCheckpoint();
        VerifyCheckpointTopic();
        UseStoredSpec(trainer.Spec);

        // The gauge starts at the newest stored version's creation time, not 0, so that the no-new-version alert measures
        // the age of the newest version from the first scrape after a restart.
        ContinualServeMetrics.LearnerLastVersionTimestamp.Set(latest.Manifest.CreatedAt.ToUnixTimeMilliseconds() / 1000.0);

        // A restart under a pin that rolled the base back starts from the pinned version (Learner:TrainFromPin).
        if (TakePinToTrainFrom() is { } pinned)
        {
            _ = TrainFromPinnedVersion(pinned);
        }

        TrainerOptions trainerOptions = options.Trainer;
        if (trainerOptions.IsAnalytic)
        {
            LogStartingAnalytic(
                logger, options.Topic, options.GroupId, latest.Number, device, latest.Spec.HiddenSizes[^1], trainerOptions.AnalyticRegularization);
        }
        else
        {
            LogStarting(
                logger, options.Topic, options.GroupId, latest.Number, device, trainerOptions.Strategy, trainerOptions.BufferKind,
                trainer.ReplayBuffer.Capacity, trainerOptions.StepsPerBatch, trainerOptions.AsymmetricNewLoss, trainerOptions.DistillationWeight, trainerOptions.FeatureLearningRateScale);
        }

        stopping = new CancellationTokenSource();
        stopped.Reset();
        thread = new Thread(() => Run(stopping.Token)) { IsBackground = true, Name = "continualserve-learner" };
        thread.Start();
    }

    /// <summary>
    /// Stops the consumer thread after its current step. Pending examples stay uncommitted. Returns false, and logs,
    /// when the thread is still running after <paramref name="timeout"/>.
    /// </summary>
    public bool Stop(TimeSpan timeout)
    {
        if (disposed)
        {
            return true;
        }

        stopping?.Cancel();
        if (stopped.Wait(timeout))
        {
            return true;
        }

        LogStopTimedOut(logger, timeout.TotalSeconds);
        return false;
    }

    /// <summary>
    /// Stops the learner and frees its models. A thread that does not stop within 30 s may still be using them,
    /// so they are then left to the process instead: freeing libtorch memory under a running step would crash it.
    /// </summary>
    /// <remarks>A second call after a completed one does nothing, and one after a skipped one tries the stop again.</remarks>
    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        if (!Stop(TimeSpan.FromSeconds(30)))
        {
            LogDisposeSkipped(logger);
            return;
        }

        disposed = true;
        trainer?.Dispose();
        publishedWeights?.Dispose();
        roundWriteWatchdog?.Dispose();
        markerReadWatchdog?.Dispose();
        markerWriteWatchdog?.Dispose();
        fileReadWatchdog?.Dispose();
        stopping?.Dispose();
        stopped.Dispose();
    }

    /// <summary>
    /// Builds the record codec and the promotion gate from <paramref name="spec"/>, the spec of the version that trains,
    /// and warns when Learner:InitialSpec differs from it, because the configured spec then has no effect.
    /// </summary>
    private void UseStoredSpec(ModelSpec spec)
    {
        codec = new ExampleRecordCodec(spec.FeatureCount, spec.ClassCount, options.MaxRecordBytes)
        {
            MaxTask = options.MaxTask,
            MaxAbsFeatureValue = options.MaxAbsFeatureValue,
        };
        promotionGate = new PromotionGate(options.Promotion, spec, options.StoreDirectory, logger, ReadGoldenSet);
        if (!string.Equals(options.InitialSpec.ToJson(), spec.ToJson(), StringComparison.Ordinal))
        {
            LogInitialSpecIgnored(logger, Describe(options.InitialSpec), latest!.Number, store.RootDirectory, Describe(spec));
        }
    }

    private static string Describe(ModelSpec spec)
    {
        string inputShape = string.Join(", ", spec.InputShape);
        string labels = string.Join(", ", spec.Labels);
        string hiddenSizes = string.Join(", ", spec.HiddenSizes);
        return string.Create(
            System.Globalization.CultureInfo.InvariantCulture,
            $"{spec.Name}, {spec.Architecture}, input shape [{inputShape}], labels [{labels}], hidden sizes [{hiddenSizes}], input scale {spec.InputScale}");
    }

    private ModelVersion SaveInitialVersion()
    {
        torch.manual_seed(options.Trainer.Seed);
        using nn.Module<Tensor, Tensor> module = ModelFactory.Create(options.InitialSpec);
        // Versions that failed their checks (logged by the store as error 101) are still listed, and the new version
        // is numbered above them.
        int unusable = store.ListVersionNumbers().Count;
        ModelVersion version = store.Save(options.InitialSpec, module, new ModelManifest());
        if (unusable > 0)
        {
            LogNoIntactVersion(logger, store.RootDirectory, unusable, options.InitialSpec.Architecture, version.Number);
        }
        else
        {
            LogInitialVersion(logger, version.Number, options.InitialSpec.Architecture);
        }

        return version;
    }

    private void ReleaseStoreLock()
    {
        checkpointLock?.Dispose();
        checkpointLock = null;
        storeLock?.Dispose();
        storeLock = null;
    }

    private void Run(CancellationToken cancellation)
    {
        try
        {
            ConsumeWithClients(cancellation);
        }
        catch (Exception exception)
        {
            // A client's Dispose that throws while the first error unwinds replaces it, so the first error is kept.
            Exception failure = firstFailure ?? exception;
            if (!ReferenceEquals(failure, exception))
            {
                LogCleanupFailed(logger, exception, "closing the Kafka clients", failure.GetType().Name, exception.Message);
            }

            LogFailure(failure);
            Failure = failure;
        }
        finally
        {
            // The consumer is disposed now, so no later work may poll it.
            groupConsumer = null;
            UpdateStatus(running: false);
            ReportReadiness();
            LogStopped(logger, Status.Trained, latest?.Number ?? 0);
            ReleaseStoreLock();
            stopped.Set();
        }

        if (Failure is not null)
        {
            Failed?.Invoke(Failure);
        }
    }

    private void ConsumeWithClients(CancellationToken cancellation)
    {
        using BrokerWatchdog watchdog = StartBrokerWatchdog();
        using IConsumer<byte[]?, byte[]?> consumer = BuildConsumer();
        groupConsumer = consumer;
        using var deadLetters = new DeadLetterPublisher(options.BootstrapServers, options.ResolvedDeadLetterTopic, logger, kafkaProperties)
        {
            BeforeProducerClose = FaultHooks.BeforeDeadLetterClose,
        };
        consumer.Subscribe(options.Topic);
        UpdateStatus(running: true);
        ReportReadiness();
        try
        {
            ConsumeUntilStopped(consumer, deadLetters, cancellation);
            CompletePublishing(consumer, wait: true);
            CommitCheckpointOffsets(consumer);
        }
        catch (Exception exception)
        {
            firstFailure = exception;
            CleanUpAfterFailure(consumer, exception);
            throw;
        }

        try
        {
            LeaveGroup(consumer);
        }
        catch (KafkaException exception)
        {
            // The loop ends without an error only on a requested stop, and every committed offset belongs to a checkpoint
            // on disk, so a failed close loses nothing and the stop stays clean. The broker drops the member when its
            // session times out.
            LogCloseFailedOnStop(logger, exception, options.GroupId, options.SessionTimeout.TotalSeconds, exception.Message);
        }
        catch (Exception exception)
        {
            // Any other error (a rebalance handler that throws) is a failure. The clients' Dispose runs next and can throw
            // as well, so this error is kept as the first one.
            firstFailure = exception;
            throw;
        }
    }

    /// <summary>Closes the consumer, which revokes its partitions and leaves the group. Logs a slow leave.</summary>
    // librdkafka's Close waits for the coordinator's LeaveGroup response, which comes only after a rebalance in progress
    // ends. The embedded broker (rdkafka_mock_cgrp.c in librdkafka 2.16) ends one session.timeout.ms - 1000 ms after
    // it starts, up to 9 s with the default 10 s session. Measured on 2 cores: 5.0 s during a rebalance, 0.1 to 0.8 s without.
    private void LeaveGroup(IConsumer<byte[]?, byte[]?> consumer)
    {
        long started = Stopwatch.GetTimestamp();
        FaultHooks.BeforeLeaveGroup?.Invoke();
        consumer.Close();
        TimeSpan elapsed = Stopwatch.GetElapsedTime(started);
        if (elapsed >= SlowLeaveThreshold)
        {
            LogSlowLeave(logger, options.GroupId, elapsed.TotalSeconds);
        }
    }

    private void ConsumeUntilStopped(IConsumer<byte[]?, byte[]?> consumer, DeadLetterPublisher deadLetters, CancellationToken cancellation)
    {
        ReadBatch? ready = null;
        while (!cancellation.IsCancellationRequested)
        {
            BeforeConsume(consumer);
            FaultHooks.BeforeConsume?.Invoke();

            // Read the next batch and decode it on the thread pool while this thread handles the batch before.
            List<ConsumeResult<byte[]?, byte[]?>> read = ReadAvailable(consumer, ready is null ? TimeSpan.FromMilliseconds(100) : TimeSpan.Zero);
            Task<ReadBatch>? decoding = read.Count > 0 ? DecodeAsync(read) : null;
            CompletePublishing(consumer, wait: false);
            if (ready is not null)
            {
                HandleBatch(consumer, deadLetters, ready, cancellation);
            }

            ready = decoding?.GetAwaiter().GetResult();
            if (read.Count == 0)
            {
                bool idle = DateTime.UtcNow - lastRecordAt >= options.IdleRoundDelay;
                if (idle && (trainedSinceRound > 0 || pending.Count > 0 || heldOutSinceRound > 0))
                {
                    RunRound(consumer, "idle");
                }
            }
        }
    }

    private void HandleBatch(IConsumer<byte[]?, byte[]?> consumer, DeadLetterPublisher deadLetters, ReadBatch batch, CancellationToken cancellation)
    {
        foreach (DecodedRecord record in batch.Records)
        {
            if (batch.Generation != readGeneration || cancellation.IsCancellationRequested)
            {
                return;
            }

            lastRecordAt = DateTime.UtcNow;
            Handle(consumer, deadLetters, record);
        }
    }

    private void Handle(IConsumer<byte[]?, byte[]?> consumer, DeadLetterPublisher deadLetters, DecodedRecord record)
    {
        ConsumeResult<byte[]?, byte[]?> result = record.Result;
        LabeledExample? example = record.Example;
        string? error = example is null ? record.Error : TaskJumpError(example.Task);
        if (example is null || error is not null)
        {
            error ??= record.Error;
            deadLetters.Publish(result, error);
            ContinualServeMetrics.DeadLetters.Inc();
            invalidCount++;
            ContinualServeMetrics.LearnerExamples.WithLabels("invalid").Inc();
            if (invalidCount <= 10 || invalidCount % 1000 == 0)
            {
                LogInvalidRecord(logger, result.TopicPartitionOffset, error, invalidCount);
            }

            Advance(result);
            return;
        }

        if (example.Task > currentTask)
        {
            // The previous task is over: its row of the accuracy matrix is final once this round is done.
            if (currentTask > 0 && (trainedSinceRound > 0 || pending.Count > 0 || heldOutSinceRound > 0))
            {
                long generation = readGeneration;
                RunRound(consumer, "task-end");
                if (readGeneration != generation)
                {
                    // A rebalance served while the round waited for the previous write moved the partitions back to
                    // their handled positions, so this record is read again and handled then.
                    return;
                }
            }

            currentTask = example.Task;
            LogTaskStarted(logger, currentTask, result.TopicPartitionOffset);
        }

        bool lateTask = IsLateTask(example.Task);
        if (lateTask)
        {
            CountLateTaskExample(example.Task, result.TopicPartitionOffset);
        }

        if (record.IsHoldout && !lateTask)
        {
            evaluator.Add(example, record.IdHash);
            heldOutSinceRound++;
            ContinualServeMetrics.LearnerExamples.WithLabels("holdout").Inc();
        }
        else
        {
            pending.Add(example);
            if (pending.Count >= options.Trainer.BatchSize)
            {
                TrainPending();
            }
        }

        Advance(result);
        if (trainedSinceRound >= options.RoundExamples)
        {
            RunRound(consumer, "periodic");
        }
    }

    // The current task only rises, so a task far above it would leave every task in between late (warning 286).
    private string? TaskJumpError(int task)
    {
        long highest = (long)currentTask + options.MaxTaskJump;
        return task <= highest
            ? null
            : $"field 'task' is {task}, more than Learner:MaxTaskJump ({options.MaxTaskJump}) above the current task {currentTask}";
    }

    private void Advance(ConsumeResult<byte[]?, byte[]?> result)
    {
        positions[result.TopicPartition] = result.Offset.Value + 1;
        RememberHandledRecord(result);
        lock (statusLock)
        {
            status = status with
            {
                Consumed = status.Consumed + 1,
                Invalid = invalidCount,
                CurrentTask = currentTask,
                Position = positions.Values.Sum(),
            };
        }
    }

    private void TrainPending()
    {
        if (pending.Count == 0)
        {
            return;
        }

        StepLosses losses = trainer!.Step(pending);
        ObserveStep(pending, losses);
        if (losses.Skipped)
        {
            LogNonFiniteLoss(logger, losses.Total, trainer.SkippedStepCount);
            ContinualServeMetrics.LearnerSkippedSteps.Inc();
            if (losses.DroppedReplayExamples > 0)
            {
                LogReplayExamplesDropped(logger, losses.DroppedReplayExamples, trainer.ReplayBuffer.Count);
            }
        }
        else
        {
            lossSum += losses.Total;
            logitLossSum += losses.ReplayLogits;
            labelLossSum += losses.ReplayLabels;
            lossSteps++;
        }

        trainedSinceRound += pending.Count;
        ContinualServeMetrics.LearnerExamples.WithLabels("trained").Inc(pending.Count);
        pending.Clear();
    }

    /// <summary>
    /// Evaluates the candidate, reviews it, and starts writing it when the gate promotes it. The forward passes poll the
    /// consumer with its partitions paused, so a round longer than max.poll.interval.ms keeps the learner in its group.
    /// </summary>
    private void RunRound(IConsumer<byte[]?, byte[]?> consumer, string reason)
    {
        long started = Stopwatch.GetTimestamp();
        TrainPending();
        if (SkipRoundIfDiverged())
        {
            return;
        }

        // The gate compares with the live version and a rejection reloads it, so the previous round must be on disk.
        CompletePublishing(consumer, wait: true);
        // Learner:TrainFromPin: a pin that rolled the base back replaces this round's candidate with the pinned version.
        if (TakePinToTrainFrom() is { } pinned && TrainFromPinnedVersion(pinned))
        {
            ContinualServeMetrics.LearnerRoundDuration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
            return;
        }

        // The candidate contains every record before these positions. A rebalance that the round's polls serve removes a
        // revoked partition from the positions, so they are taken before the first poll.
        TopicPartitionOffset[] offsets = positions
            .Select(pair => new TopicPartitionOffset(pair.Key, pair.Value))
            .ToArray();
        ForwardBatching batching = RoundBatching(consumer);
        if (options.Trainer.IsAnalytic)
        {
            List<LabeledExample> holdouts = evaluator.Tasks.SelectMany(evaluator.Examples).ToList();
            double temperature = trainer!.CalibrateAnalyticHead(holdouts, batching);
            LogAnalyticCalibrated(logger, holdouts.Count, temperature);
        }

        IReadOnlyDictionary<int, double> accuracies = evaluator.Evaluate(trainer!.Module, device, batching);
        if (currentTask > 0)
        {
            matrix.Record(currentTask, accuracies);
        }

        EvaluationSummary summary = matrix.ToSummary();
        if (HoldWhileGoldenSetUnusable() is not { } golden)
        {
            // The learner stops: the candidate is neither promoted nor discarded, and its offsets are not committed.
            return;
        }

        PromotionDecision decision = promotionGate!.Review(trainer.Module, device, summary, latest?.Manifest.Evaluation, golden, batching);
        PollIfDue(consumer);
        if (decision.Promoted)
        {
            PublishCandidate(reason, started, offsets, summary with { GoldenSetAccuracy = decision.GoldenAccuracy }, accuracies);
        }
        else
        {
            DiscardCandidate(consumer, started);
        }

        ResumeAfterWork(consumer);
    }

    /// <summary>Starts writing the promoted candidate with the round's <paramref name="offsets"/>, and starts the next round's counts.</summary>
    private void PublishCandidate(
        string reason, long started, TopicPartitionOffset[] offsets, EvaluationSummary summary, IReadOnlyDictionary<int, double> accuracies)
    {
        var manifest = new ModelManifest
        {
            ParentVersion = latest?.Number,
            ExamplesTrained = (latest?.Manifest.ExamplesTrained ?? 0) + trainedSinceRound,
            TrainingOffsets = offsets
                .Select(offset => new TrainingOffset(offset.Topic, offset.Partition.Value, offset.Offset.Value))
                .ToArray(),
            Evaluation = summary,
        };
        var round = new PromotedRound(
            reason,
            currentTask,
            trainedSinceRound,
            heldOutSinceRound,
            summary,
            accuracies,
            lossSteps > 0 ? lossSum / lossSteps : double.NaN,
            lossSteps > 0 ? logitLossSum / lossSteps : null,
            lossSteps > 0 ? labelLossSum / lossSteps : null,
            offsets,
            started);
        StartPublishing(round, manifest);
        trainedSinceRound = 0;
        heldOutSinceRound = 0;
        lossSum = logitLossSum = labelLossSum = 0;
        lossSteps = 0;
    }

    private void PublishMetrics(PromotedRound round, IConsumer<byte[]?, byte[]?> consumer)
    {
        foreach ((int task, double accuracy) in round.Accuracies)
        {
            ContinualServeMetrics.TaskAccuracy.WithLabels(task.ToString(System.Globalization.CultureInfo.InvariantCulture)).Set(accuracy);
        }

        foreach ((int task, double forgetting) in round.Summary.Forgetting)
        {
            ContinualServeMetrics.TaskForgetting.WithLabels(task.ToString(System.Globalization.CultureInfo.InvariantCulture)).Set(forgetting);
        }

        ContinualServeMetrics.AverageAccuracy.Set(round.Summary.AverageAccuracy);
        ContinualServeMetrics.BackwardTransfer.Set(round.Summary.BackwardTransfer);
        if (round.Summary.GoldenSetAccuracy is double goldenAccuracy)
        {
            ContinualServeMetrics.GoldenSetAccuracy.Set(goldenAccuracy);
        }
        else
        {
            // A version promoted without a golden set (removed, or never uploaded) has no golden-set accuracy, so the gauge
            // must not keep the value of an earlier version.
            ContinualServeMetrics.GoldenSetAccuracy.Unpublish();
        }
        EvaluationMetrics.PublishAccuracyMatrix(round.Summary);
        ContinualServeMetrics.ReplayBufferExamples.Set(trainer!.ReplayBuffer.Count);
        lock (statusLock)
        {
            status = status with { ReplayExamples = trainer.ReplayBuffer.Count };
        }

        if (round.MeanLogitLoss is not null && round.MeanLabelLoss is not null)
        {
            ContinualServeMetrics.LearnerLoss.WithLabels("total").Set(round.MeanLoss);
            ContinualServeMetrics.LearnerLoss.WithLabels("replay_logits").Set(round.MeanLogitLoss.Value);
            ContinualServeMetrics.LearnerLoss.WithLabels("replay_labels").Set(round.MeanLabelLoss.Value);
        }

        ReportConsumerLag(consumer, positions.Keys.Select(partition => (partition, consumer.GetWatermarkOffsets(partition))).ToArray());
    }

    /// <summary>
    /// Handles an offset that fell out of the partition's retained range (retention deleted records the
    /// learner had not read): counts and logs the lost records, then resumes at the oldest retained one.
    /// A position past the partition's end means the topic is not the one the position came from (deleted and
    /// created again, or another cluster): that is logged as an error, and reading starts at the oldest record.
    /// Partitions still in range go back to their handled position, because records read ahead are dropped.
    /// </summary>
    private void SkipToRetainedRecords(IConsumer<byte[]?, byte[]?> consumer)
    {
        readGeneration++;
        foreach (TopicPartition partition in consumer.Assignment)
        {
            WatermarkOffsets watermarks = consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(5));
            bool known = positions.TryGetValue(partition, out long position);
            if (known && position >= watermarks.Low.Value && position <= watermarks.High.Value)
            {
                SeekOrReassign(consumer, new TopicPartitionOffset(partition, position));
                continue;
            }

            if (known && position < watermarks.Low.Value)
            {
                long lost = watermarks.Low.Value - position;
                ContinualServeMetrics.LearnerExamples.WithLabels("lost").Inc(lost);
                lock (statusLock)
                {
                    status = status with { Lost = status.Lost + lost };
                }

                LogRecordsLost(logger, partition, position, watermarks.Low.Value, lost);
            }

            if (known && position > watermarks.High.Value)
            {
                LogPositionPastEnd(logger, partition, position, watermarks.High.Value, watermarks.Low.Value);
            }

            positions[partition] = watermarks.Low.Value;
            SeekOrReassign(consumer, new TopicPartitionOffset(partition, watermarks.Low));
        }
    }

    /// <summary>
    /// Returns the settings of the learner's record readers, before the extra librdkafka properties: offsets stored and
    /// committed only by the learner, an error (not a reset) at an offset out of range, and end-of-partition events.
    /// </summary>
    private ConsumerConfig RecordReaderConfig() => new()
    {
        BootstrapServers = options.BootstrapServers,
        GroupId = options.GroupId,
        EnableAutoCommit = false,
        EnableAutoOffsetStore = false,
        AutoOffsetReset = AutoOffsetReset.Error,
        EnablePartitionEof = true,
        FetchWaitMaxMs = 10,
        ReconnectBackoffMs = 100,
    };

    private IConsumer<byte[]?, byte[]?> BuildConsumer()
    {
        ConsumerConfig config = RecordReaderConfig();
        config.SessionTimeoutMs = (int)options.SessionTimeout.TotalMilliseconds;
        config.HeartbeatIntervalMs = (int)Math.Max(100, options.SessionTimeout.TotalMilliseconds / 6);
        config.ReconnectBackoffMaxMs = 2000;
        config = kafkaProperties.ApplyTo(config);
        return new ConsumerBuilder<byte[]?, byte[]?>(config)
            .SetPartitionsAssignedHandler((assigned, partitions) =>
            {
                readGeneration++;
                // The learner keeps librdkafka's default eager assignors (range, roundrobin), so this is the whole
                // assignment, not an increment.
                assignedPartitions = partitions.ToArray();
                OnLagPartitionsAssigned();
                if (logger.IsEnabled(LogLevel.Information))
                {
                    string assignedList = DescribePartitions(partitions);
                    LogPartitionsAssigned(logger, options.GroupId, assignedList);
                }

                // The coordinator that assigned them responds, so the watchdog queries the new leaders now.
                brokerWatchdog?.Wake();
                return partitions.Select(partition => ClampToRetained(assigned, StartingOffset(partition))).ToList();
            })
            .SetPartitionsRevokedHandler((revoking, partitions) =>
            {
                assignedPartitions = null;
                OnLagPartitionsRevoked(partitions.Select(partition => partition.TopicPartition));

                // librdkafka keeps a partition's pause across its revocation, and the resume after the work finds it no
                // longer assigned, so a partition paused for work would stay paused when the group assigns it again.
                if (pausedForWork)
                {
                    revoking.Resume(partitions.ConvertAll(partition => partition.TopicPartition));
                }

                if (logger.IsEnabled(LogLevel.Information))
                {
                    string revokedList = DescribePartitions(partitions.ConvertAll(partition => partition.TopicPartition));
                    LogPartitionsRevoked(logger, options.GroupId, revokedList);
                }

                RememberPositions();
            })
            .SetErrorHandler((_, error) => OnKafkaError(error))
            .SetLogHandler(new KafkaClientLog(logger).OnLog)
            .Build();
    }

    // The checkpoint, or the position this process reached before a rebalance, comes first. The newest
    // version's manifest records the same offsets and serves learners that predate checkpoints.
    private TopicPartitionOffset StartingOffset(TopicPartition partition)
    {
        long? resume = ResumeOffset(partition);
        if (resume is not null)
        {
            positions[partition] = resume.Value;
            return new TopicPartitionOffset(partition, resume.Value);
        }

        TrainingOffset? recorded = latest is null ? null : RecordedOffset(latest.Manifest.TrainingOffsets, partition);
        if (recorded is null)
        {
            WarnIfCheckpointReadOtherTopics(partition);
            return new TopicPartitionOffset(partition, Offset.Beginning);
        }

        positions[partition] = recorded.Offset;
        return new TopicPartitionOffset(partition, recorded.Offset);
    }

    // A store that learned from other topics (Learner:Topic changed) keeps its tasks and holdout sets, and the new
    // topic's tasks with the same numbers join them, so the operator needs to know that the topic is new to it.
    private void WarnIfCheckpointReadOtherTopics(TopicPartition partition)
    {
        string[] otherTopics = (checkpoint?.Offsets ?? [])
            .Select(offset => offset.Topic)
            .Where(topic => topic != partition.Topic)
            .Distinct()
            .Order(StringComparer.Ordinal)
            .ToArray();
        if (otherTopics.Length > 0 && warnedNewPartitions.Add(partition))
        {
            LogNewTopicOnTrainedStore(logger, partition, string.Join(", ", otherTopics), latest!.Number, currentTask);
        }
    }

    private static TrainingOffset? RecordedOffset(IReadOnlyList<TrainingOffset> offsets, TopicPartition partition) =>
        offsets.FirstOrDefault(offset => offset.Topic == partition.Topic && offset.Partition == partition.Partition.Value);

    private void UpdateStatus(bool running)
    {
        lock (statusLock)
        {
            status = status with { IsRunning = running, LatestVersion = latest?.Number ?? 0, CurrentTask = currentTask };
        }
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Learner starting on topic {Topic} (group {GroupId}) from version {Version} on {Device} with strategy {Strategy}, {BufferKind} buffer of {ReplayCapacity}, gradient steps per batch {StepsPerBatch}, asymmetric new-example loss {Asymmetric}, LwF weight {DistillationWeight}, feature learning-rate scale {FeatureLearningRateScale}")]
    private static partial void LogStarting(
        ILogger logger, string topic, string groupId, long version, Device device, ReplayStrategy strategy, ReplayBufferKind bufferKind,
        int replayCapacity, int stepsPerBatch, bool asymmetric, double distillationWeight, double featureLearningRateScale);

    [LoggerMessage(EventId = 218, Level = LogLevel.Information, Message = "Learner starting on topic {Topic} (group {GroupId}) from version {Version} on {Device} with the analytic strategy: {Features} random features, ridge penalty {Regularization}, no replay buffer")]
    private static partial void LogStartingAnalytic(
        ILogger logger, string topic, string groupId, long version, Device device, int features, double regularization);

    [LoggerMessage(EventId = 219, Level = LogLevel.Debug, Message = "Calibrated the analytic head on {Count} holdout examples: temperature {Temperature:G4}")]
    private static partial void LogAnalyticCalibrated(ILogger logger, int count, double temperature);

    [LoggerMessage(EventId = 226, Level = LogLevel.Warning, Message = "Learner:InitialSpec ({Configured}) differs from the spec of version {Version} in {Directory} ({Stored}) and is ignored, because the stored spec trains, validates records and checks the golden set. Learner:InitialSpec applies only to an empty store")]
    private static partial void LogInitialSpecIgnored(ILogger logger, string configured, long version, string directory, string stored);

    [LoggerMessage(EventId = 228, Level = LogLevel.Warning, Message = "The learner checkpoint contains offsets of topics {Topics} but none of {Partition}, so the learner reads it from its oldest record into version {Version}. Its examples continue the accuracy matrix at task {Task}, and tasks with the numbers of earlier ones share their holdout sets. Use an empty store directory (--store) to learn this topic from scratch")]
    private static partial void LogNewTopicOnTrainedStore(ILogger logger, TopicPartition partition, string topics, long version, int task);

    [LoggerMessage(EventId = 201, Level = LogLevel.Information, Message = "Learner stopped. This process trained {Trained} examples, and the latest version is {Version}")]
    private static partial void LogStopped(ILogger logger, long trained, long version);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "Model store was empty: saved untrained {Architecture} as version {Version}")]
    private static partial void LogInitialVersion(ILogger logger, long version, string architecture);

    [LoggerMessage(EventId = 275, Level = LogLevel.Warning, Message = "Model store {Directory} has no intact version ({Count} found, error 101 names each problem), so the learner saved an untrained {Architecture} as version {Version} and trains on from it")]
    private static partial void LogNoIntactVersion(ILogger logger, string directory, int count, string architecture, long version);

    [LoggerMessage(EventId = 203, Level = LogLevel.Information, Message = "Task {Task} started at {Position}")]
    private static partial void LogTaskStarted(ILogger logger, int task, TopicPartitionOffset position);

    [LoggerMessage(EventId = 204, Level = LogLevel.Information, Message = "Published version {Version} ({Reason} round, task {Task}, {Trained} new examples): ACC {AverageAccuracy:F4}, BWT {BackwardTransfer:F4}, loss {Loss:F4}")]
    private static partial void LogRound(ILogger logger, long version, string reason, int task, long trained, double averageAccuracy, double backwardTransfer, double loss);

    [LoggerMessage(EventId = 205, Level = LogLevel.Warning, Message = "Invalid record at {Position} sent to the dead-letter topic: {Reason} ({Count} invalid so far)")]
    private static partial void LogInvalidRecord(ILogger logger, TopicPartitionOffset position, string reason, long count);

    [LoggerMessage(EventId = 206, Level = LogLevel.Error, Message = "{Lost} records on {Partition} were deleted by retention before the learner read them (position {Position}, oldest retained {LowWatermark}); resuming at the oldest retained record")]
    private static partial void LogRecordsLost(ILogger logger, TopicPartition partition, long position, long lowWatermark, long lost);

    [LoggerMessage(EventId = 225, Level = LogLevel.Error, Message = "The learner's position {Position} on {Partition} is past the partition's end ({End}), so the topic is not the one the checkpoint read: it was deleted and created again, or the learner now reads another cluster. Reading starts at the oldest record, {Oldest}, and its examples are trained even where an earlier topic had the same ids")]
    private static partial void LogPositionPastEnd(ILogger logger, TopicPartition partition, long position, long end, long oldest);

    [LoggerMessage(EventId = 290, Level = LogLevel.Warning, Message = "Removed {Dropped} replay examples whose replay loss is not finite, so later steps can sample the buffer again ({Kept} kept). Their features are too large for the model: lower Learner:MaxAbsFeatureValue")]
    private static partial void LogReplayExamplesDropped(ILogger logger, int dropped, int kept);

    [LoggerMessage(EventId = 207, Level = LogLevel.Warning, Message = "Skipped a training step with a non-finite loss {Loss} ({Count} skipped so far)")]
    private static partial void LogNonFiniteLoss(ILogger logger, double loss, long count);

    [LoggerMessage(EventId = 208, Level = LogLevel.Warning, Message = "Kafka consume error {Code}; retrying")]
    private static partial void LogConsumeError(ILogger logger, Exception exception, ErrorCode code);

    [LoggerMessage(EventId = 209, Level = LogLevel.Warning, Message = "Kafka error {Code}: {Reason} (fatal: {IsFatal})")]
    private static partial void LogKafkaError(ILogger logger, ErrorCode code, string reason, bool isFatal);

    [LoggerMessage(EventId = 263, Level = LogLevel.Critical, Message = "The learner stopped on an error it does not handle, so the process stops and a restart continues from the newest checkpoint: {Reason}")]
    private static partial void LogLearnerFailed(ILogger logger, Exception exception, string reason);

    [LoggerMessage(EventId = 211, Level = LogLevel.Critical, Message = "Fatal Kafka error {Code}; the learner stopped")]
    private static partial void LogFatalKafkaError(ILogger logger, Exception exception, ErrorCode code);

    [LoggerMessage(EventId = 212, Level = LogLevel.Warning, Message = "The learner did not stop within {Seconds} s")]
    private static partial void LogStopTimedOut(ILogger logger, double seconds);

    [LoggerMessage(EventId = 262, Level = LogLevel.Error, Message = "The learner thread did not stop, so its models and buffers stay allocated. Restart the process to free them")]
    private static partial void LogDisposeSkipped(ILogger logger);

    [LoggerMessage(EventId = 270, Level = LogLevel.Warning, Message = "Closing the Kafka consumer of group {GroupId} failed on a requested stop: {Reason}. The stop counts as clean, because offsets are committed only after their checkpoint is written. The group reassigns the learner's partitions when its session times out ({SessionSeconds} s) at the latest")]
    private static partial void LogCloseFailedOnStop(ILogger logger, Exception exception, string groupId, double sessionSeconds, string reason);

    /// <summary>
    /// Returns the partitions as Confluent.Kafka prints them ("partitions examples [[0]], examples [[1]]") for the assignment
    /// logs, or "no partitions" for a group member that gets none, such as a second learner on a one-partition topic.
    /// </summary>
    internal static string DescribePartitions(IReadOnlyList<TopicPartition> partitions) =>
        partitions.Count == 0 ? "no partitions" : "partitions " + string.Join(", ", partitions.Select(partition => partition.ToString()));

    [LoggerMessage(EventId = 271, Level = LogLevel.Information, Message = "Consumer group {GroupId} assigned {Partitions} to the learner")]
    private static partial void LogPartitionsAssigned(ILogger logger, string groupId, string partitions);

    [LoggerMessage(EventId = 272, Level = LogLevel.Information, Message = "Consumer group {GroupId} revoked {Partitions} from the learner")]
    private static partial void LogPartitionsRevoked(ILogger logger, string groupId, string partitions);

    [LoggerMessage(EventId = 216, Level = LogLevel.Information, Message = "Leaving consumer group {GroupId} took {Seconds:F1} s, usually because a rebalance was in progress or the group coordinator did not respond")]
    private static partial void LogSlowLeave(ILogger logger, string groupId, double seconds);
}
