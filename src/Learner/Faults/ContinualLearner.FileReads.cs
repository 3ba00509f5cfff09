using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Faults;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace ContinualServe.Learner;

/// <summary>
/// Stall watches over the files that the learner reads while it runs: the store's pause marker twice a second, the
/// golden set at each round, the live version after a rejected candidate, the checkpoint of a rollback, and the pin
/// with the pinned version under Learner:TrainFromPin (ContinualLearner.TrainFromPin.cs). The
/// pause marker's write when training diverges has a watch of its own. A read or write that a hung volume (an NFS
/// server that stopped responding) blocks stops consumption and cannot be cancelled, so the watch only reports it. Once
/// the access passes Learner:RoundWriteStallThreshold, the learner logs a warning that names the file and reports
/// itself not ready until the access returns. Each access runs on a thread-pool task while the learner thread polls the
/// consumer with its partitions paused, so that it keeps the learner in its consumer group. TorchSharp modules and the
/// trainer stay on the learner thread, which loads them from the bytes that the task read.
/// </summary>
public sealed partial class ContinualLearner
{
    private const string GoldenSetRead = "golden set read";
    private const string LiveVersionReload = "reload of the live version after a rejected candidate";
    private const string RollbackLoad = "checkpoint load of a rollback";

    private FileAccessWatchdog? markerReadWatchdog;
    private FileAccessWatchdog? markerWriteWatchdog;
    private FileAccessWatchdog? fileReadWatchdog;

    /// <summary>The watch over the golden set read, the live version's reload and a rollback's checkpoint load.</summary>
    private FileAccessWatchdog FileReadWatchdog => fileReadWatchdog ??= new FileAccessWatchdog(
        options.RoundWriteStallThreshold, OnFileReadStalled, OnFileReadRecovered);

    /// <summary>
    /// Reads the store's pause marker under a stall watch. The read runs on a thread-pool task while the learner thread
    /// polls the consumer, so a volume that blocks it (a hung NFS server) stops consumption but keeps the learner in its
    /// group. The learner reports itself not ready once the read passes Learner:RoundWriteStallThreshold.
    /// </summary>
    private bool ReadPauseMarker()
    {
        markerReadWatchdog ??= new FileAccessWatchdog(options.RoundWriteStallThreshold, OnMarkerReadStalled, OnMarkerReadRecovered);
        markerReadWatchdog.Start("pause marker read", Path.Combine(store.RootDirectory, StoreControlFiles.LearningPausedFileName));
        Action? beforeRead = FaultHooks.BeforePauseMarkerRead;
        try
        {
            return WaitPolling(Task.Run(() =>
            {
                beforeRead?.Invoke();
                return StoreControlFiles.IsLearningPaused(store.RootDirectory);
            }));
        }
        finally
        {
            markerReadWatchdog.Finish();
        }
    }

    /// <summary>
    /// Writes the store's pause marker after training diverged, under a stall watch. The learner reports itself diverged
    /// only after the write, so without the watch a volume that blocks it would leave the learner reported ready. The
    /// write runs on a thread-pool task while the learner thread polls the consumer, so a stalled write keeps the learner
    /// in its group.
    /// </summary>
    private void WriteDivergencePauseMarker()
    {
        markerWriteWatchdog ??= new FileAccessWatchdog(options.RoundWriteStallThreshold, OnMarkerWriteStalled, OnMarkerWriteRecovered);
        markerWriteWatchdog.Start("pause marker write", Path.Combine(store.RootDirectory, StoreControlFiles.LearningPausedFileName));
        Action? beforeWrite = FaultHooks.BeforePauseMarkerWrite;
        try
        {
            WaitPolling(Task.Run(() =>
            {
                beforeWrite?.Invoke();
                StoreControlFiles.SetLearningPaused(store, paused: true);
            }));
        }
        finally
        {
            markerWriteWatchdog.Finish();
        }
    }

    /// <summary>
    /// Reads the golden set's file for the promotion gate under the file-read watch. The read runs on a thread-pool task
    /// while the learner thread polls the consumer, so a stalled read keeps the learner in its group.
    /// </summary>
    private byte[] ReadGoldenSet(string path)
    {
        FileAccessWatchdog watchdog = FileReadWatchdog;
        watchdog.Start(GoldenSetRead, path);
        Action? beforeRead = FaultHooks.BeforeGoldenSetRead;
        try
        {
            return WaitPolling(Task.Run(() =>
            {
                beforeRead?.Invoke();
                return File.ReadAllBytes(path);
            }));
        }
        finally
        {
            watchdog.Finish();
        }
    }

    /// <summary>
    /// Resets the trainer to the live version's weights, and the analytic sums behind them, under the file-read watch.
    /// Returns the path of the checkpoint file the sums came from, or null when the trainer was reset without one. The
    /// files are read, and the newest checkpoint's optimizer file checked against its SHA-256, on a thread-pool task while
    /// the learner thread polls the consumer. The learner thread then loads them into the module and the trainer.
    /// </summary>
    private string? ReloadLiveVersion()
    {
        FileAccessWatchdog watchdog = FileReadWatchdog;
        watchdog.Start(LiveVersionReload, Checkpoints.RootDirectory);
        ModelVersion live = latest!;
        ContinualTrainer reset = trainer!;
        Action? beforeReload = FaultHooks.BeforeLiveVersionReload;
        NativeBufferStream? weights = null;
        try
        {
            (string? analyticSums, weights, AnalyticSums? sums) = WaitPolling(Task.Run(() =>
            {
                // A removed or replaced directory would read as a damaged optimizer file (warning 224) or as another
                // store's version, so the learner stops with the directory's error instead.
                store.EnsureRootDirectoryUnchanged();
                Checkpoints.EnsureRootDirectoryUnchanged();
                string? sumsPath = LiveAnalyticSums();
                watchdog.Enter(live.WeightsPath);
                beforeReload?.Invoke();
                NativeBufferStream read = NativeBufferStream.ReadFile(live.WeightsPath);
                try
                {
                    if (sumsPath is not null)
                    {
                        watchdog.Enter(sumsPath);
                    }

                    return (sumsPath, read, reset.ReadAnalyticSums(sumsPath));
                }
                catch
                {
                    read.Dispose();
                    throw;
                }
            }));
            using nn.Module<Tensor, Tensor> module = live.LoadModule(device, weights);
            reset.ResetWeights(module, sums);
            return analyticSums;
        }
        finally
        {
            weights?.Dispose();
            watchdog.Finish();
        }
    }

    /// <summary>
    /// Finds the newest intact checkpoint and loads it into the learner under the file-read watch. The checkpoint is found
    /// and its files read on a thread-pool task while the learner thread polls the consumer, and loaded on the learner thread.
    /// </summary>
    private (LearnerCheckpoint Checkpoint, string Directory) LoadRollbackCheckpoint()
    {
        FileAccessWatchdog watchdog = FileReadWatchdog;
        watchdog.Start(RollbackLoad, Checkpoints.RootDirectory);
        Action? beforeLoad = FaultHooks.BeforeRollbackLoad;
        try
        {
            ((LearnerCheckpoint Checkpoint, string Directory) found, CheckpointFiles files) = WaitPolling(Task.Run(() =>
            {
                beforeLoad?.Invoke();
                (LearnerCheckpoint Checkpoint, string Directory) latestCheckpoint = Checkpoints.TryLoadLatest()
                    ?? throw new InvalidOperationException($"No intact learner checkpoint in {Checkpoints.RootDirectory} to roll back to.");
                watchdog.Enter(latestCheckpoint.Directory);
                return (latestCheckpoint, ReadCheckpointFiles(latestCheckpoint.Checkpoint, latestCheckpoint.Directory));
            }));
            using (files)
            {
                ApplyState(found.Checkpoint, found.Directory, files);
            }

            return found;
        }
        finally
        {
            watchdog.Finish();
        }
    }

    // Runs on a timer thread while the learner thread is still blocked in the read.
    private void OnMarkerReadStalled(WatchedFileAccess access, TimeSpan elapsed)
    {
        SetFileReadStalled(true);
        LogMarkerReadStalled(logger, access.Path, elapsed.TotalSeconds, options.RoundWriteStallThreshold.TotalSeconds);
        ReportReadiness();
    }

    private void OnMarkerReadRecovered(WatchedFileAccess access, TimeSpan elapsed)
    {
        SetFileReadStalled(false);
        LogMarkerReadRecovered(logger, elapsed.TotalSeconds);
        ReportReadiness();
    }

    // Runs on a timer thread while the learner thread is still blocked in the write.
    private void OnMarkerWriteStalled(WatchedFileAccess access, TimeSpan elapsed)
    {
        SetMarkerWriteStalled(true);
        LogMarkerWriteStalled(logger, access.Path, elapsed.TotalSeconds, options.RoundWriteStallThreshold.TotalSeconds);
        ReportReadiness();
    }

    private void OnMarkerWriteRecovered(WatchedFileAccess access, TimeSpan elapsed)
    {
        SetMarkerWriteStalled(false);
        LogMarkerWriteRecovered(logger, access.Path, elapsed.TotalSeconds);
        ReportReadiness();
    }

    // Runs on a timer thread while the learner thread is still blocked in the read.
    private void OnFileReadStalled(WatchedFileAccess access, TimeSpan elapsed)
    {
        SetFileReadStalled(true);
        LogFileReadStalled(logger, access.Operation, access.Path, elapsed.TotalSeconds, options.RoundWriteStallThreshold.TotalSeconds);
        ReportReadiness();
    }

    private void OnFileReadRecovered(WatchedFileAccess access, TimeSpan elapsed)
    {
        SetFileReadStalled(false);
        LogFileReadRecovered(logger, access.Operation, access.Path, elapsed.TotalSeconds);
        ReportReadiness();
    }

    // The learner thread runs one watched read at a time, so one flag serves both watches.
    private void SetFileReadStalled(bool stalled)
    {
        lock (statusLock)
        {
            status = status with { IsFileReadStalled = stalled };
        }
    }

    private void SetMarkerWriteStalled(bool stalled)
    {
        lock (statusLock)
        {
            status = status with { IsMarkerWriteStalled = stalled };
        }
    }

    [LoggerMessage(EventId = 279, Level = LogLevel.Warning, Message = "Writing the pause marker {Path} after training diverged has run for {Seconds:F1} s, longer than Learner:RoundWriteStallThreshold ({ThresholdSeconds} s), so the learner consumes nothing and reports itself not ready until the write returns. Check the store's volume: a hung NFS server can block it")]
    private static partial void LogMarkerWriteStalled(ILogger logger, string path, double seconds, double thresholdSeconds);

    [LoggerMessage(EventId = 280, Level = LogLevel.Information, Message = "The stalled write of the pause marker {Path} returned after {Seconds:F1} s")]
    private static partial void LogMarkerWriteRecovered(ILogger logger, string path, double seconds);

    [LoggerMessage(EventId = 273, Level = LogLevel.Warning, Message = "Reading the pause marker {Path} has run for {Seconds:F1} s, longer than Learner:RoundWriteStallThreshold ({ThresholdSeconds} s), so the learner consumes nothing and reports itself not ready until the read returns. Check the store's volume: a hung NFS server can block it")]
    private static partial void LogMarkerReadStalled(ILogger logger, string path, double seconds, double thresholdSeconds);

    [LoggerMessage(EventId = 274, Level = LogLevel.Information, Message = "The stalled read of the pause marker returned after {Seconds:F1} s")]
    private static partial void LogMarkerReadRecovered(ILogger logger, double seconds);

    [LoggerMessage(EventId = 276, Level = LogLevel.Warning, Message = "The learner's {Operation} at {Path} has run for {Seconds:F1} s, longer than Learner:RoundWriteStallThreshold ({ThresholdSeconds} s), so the learner consumes nothing and reports itself not ready until the read returns. Check the volume: a hung NFS server can block it")]
    private static partial void LogFileReadStalled(ILogger logger, string operation, string path, double seconds, double thresholdSeconds);

    [LoggerMessage(EventId = 277, Level = LogLevel.Information, Message = "The learner thread's stalled {Operation} at {Path} returned after {Seconds:F1} s")]
    private static partial void LogFileReadRecovered(ILogger logger, string operation, string path, double seconds);
}
