using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;

namespace ContinualServe.Server.Hosting;

/// <summary>The result of <see cref="ModelSwapper.TryPinAndServe"/>.</summary>
public enum PinOutcome
{
    /// <summary>The version is pinned and live.</summary>
    Pinned,

    /// <summary>The version is not in this server's store, and the pin is unchanged.</summary>
    NotFound,

    /// <summary>The version's files are incomplete, or its weights do not match their SHA-256 or do not fit its spec, and the pin is unchanged.</summary>
    Corrupt,
}

/// <summary>Operator control of the served version: a version pinned in the store is served instead of the newest.</summary>
public sealed partial class ModelSwapper
{
    // The message of the last unreadable-pin error, so that each distinct error is logged once.
    private volatile string? unreadablePin;

    // The pinned version that failed to load and the version live at the time ("pinned/live"), so that each such state
    // is logged once.
    private volatile string? unloadablePin;

    // The pinned version that failed at the last check, or 0 when the pin was followed or none is set.
    private long unloadablePinVersion;

    /// <summary>The pinned version that this server could not load at its last check, or null.</summary>
    public long? UnloadablePinVersion => Volatile.Read(ref unloadablePinVersion) is long version and > 0 ? version : null;

    /// <summary>
    /// Loads <paramref name="version"/> and makes it live even when it is older than the live one, as promote and
    /// rollback do. Returns false when it is live already.
    /// </summary>
    public bool SwapToAny(ModelVersion version)
    {
        ArgumentNullException.ThrowIfNull(version);
        lock (loadLock)
        {
            long? previous = live.CurrentVersion;
            if (previous == version.Number)
            {
                return false;
            }

            live.Swap(ServedModel.Load(version, device));
            ContinualServeMetrics.ModelVersion.WithLabels(modelName).Set(version.Number);
            ContinualServeMetrics.ModelSwaps.WithLabels(modelName).Inc();
            if (previous is long replaced)
            {
                LogSwapped(logger, modelName, replaced, version.Number);
            }
            else
            {
                LogFirstLoaded(logger, modelName, version.Number);
            }

            return true;
        }
    }

    /// <summary>
    /// Makes a newly published or downloaded <paramref name="version"/> live unless a version is pinned; then the
    /// pinned version stays live, or becomes live again. Returns true when the live version changed.
    /// </summary>
    public bool TrySwapToPublished(ModelVersion version)
    {
        ArgumentNullException.ThrowIfNull(version);

        // The pin is read and followed under the load lock, so that a promote cannot write a pin between the read and
        // the swap and then see this version replace the one it pinned.
        lock (loadLock)
        {
            return TryFollowPin(out bool swappedToPin) ? swappedToPin : TrySwap(version);
        }
    }

    /// <summary>
    /// Pins version <paramref name="number"/> in the store and serves it, as a promote does. The version is checked and
    /// pinned under the store's version lock, so retention cannot delete it in between.
    /// </summary>
    /// <exception cref="StoreDirectoryChangedException">The store's directory was removed, renamed or replaced. Nothing is written.</exception>
    public PinOutcome TryPinAndServe(long number)
    {
        lock (loadLock)
        {
            // Checked before the lock, whose file would otherwise be created in a directory that replaced the store's.
            Store.EnsureRootDirectoryUnchanged();
            ModelVersion? version;
            using (Store.LockVersions())
            {
                if (!Store.ListVersionNumbers().Contains(number))
                {
                    return PinOutcome.NotFound;
                }

                if (!Store.TryLoad(number, out version))
                {
                    return PinOutcome.Corrupt;
                }

                StoreControlFiles.WritePinnedVersion(Store, number);
            }

            SwapToAny(version!);
            return PinOutcome.Pinned;
        }
    }

    /// <summary>
    /// Pins and serves the newest intact version older than the live one, as a rollback does, or returns null when the
    /// store has none.
    /// </summary>
    /// <exception cref="StoreDirectoryChangedException">The store's directory was removed, renamed or replaced. Nothing is written.</exception>
    public ModelVersion? TryPinOlderAndServe()
    {
        lock (loadLock)
        {
            long current = live.CurrentVersion ?? long.MaxValue;
            ModelVersion? version = null;
            Store.EnsureRootDirectoryUnchanged();
            using (Store.LockVersions())
            {
                foreach (long number in Store.ListVersionNumbers().Where(number => number < current).Reverse())
                {
                    if (Store.TryLoad(number, out version))
                    {
                        StoreControlFiles.WritePinnedVersion(Store, number);
                        break;
                    }
                }
            }

            if (version is not null)
            {
                SwapToAny(version);
            }

            return version;
        }
    }

    /// <summary>Removes the pin and serves the newest intact version. Returns the live version afterwards.</summary>
    /// <exception cref="StoreDirectoryChangedException">The store's directory was removed, renamed or replaced. Nothing is removed.</exception>
    public long? UnpinAndServeNewest()
    {
        lock (loadLock)
        {
            StoreControlFiles.ClearPinnedVersion(Store);
            ModelVersion? newest = Store.TryLoadLatest();
            if (newest is not null)
            {
                SwapToAny(newest);
            }

            return live.CurrentVersion;
        }
    }

    /// <summary>
    /// Serves the pinned version when there is one, and returns false when no version is pinned. An unreadable pin file
    /// keeps the live version, as the learner's replicas keep their last pin, and before any version is live it counts
    /// as no pin, so that the server can start.
    /// </summary>
    private bool TryFollowPin(out bool swapped)
    {
        swapped = false;
        if (!StoreControlFiles.TryReadPinnedVersion(Store.RootDirectory, out long? pinned, out string? problem))
        {
            if (problem != unreadablePin)
            {
                unreadablePin = problem;
                string action = live.CurrentVersion is long current
                    ? $"the live version {current} keeps serving"
                    : "the newest version is loaded because none is live yet";
                LogPinUnreadable(logger, Store.RootDirectory, problem, action);
            }

            return live.CurrentVersion is not null;
        }

        unreadablePin = null;

        if (pinned is null)
        {
            ClearUnloadablePin();
            return false;
        }

        if (live.CurrentVersion == pinned)
        {
            ClearUnloadablePin();
            return true;
        }

        if (Store.TryLoad(pinned.Value, out ModelVersion? version))
        {
            ClearUnloadablePin();
            swapped = SwapToAny(version!);
            return true;
        }

        ReportUnloadablePin(pinned.Value);
        return true;
    }

    private void ClearUnloadablePin()
    {
        unloadablePin = null;
        Volatile.Write(ref unloadablePinVersion, 0);
    }

    /// <summary>
    /// Describes, for GET /manage/v1/versions, a pinned version that is not live because it is missing or corrupt in
    /// this server's store.
    /// </summary>
    public string DescribeUnloadablePin(long pinned) =>
        $"Pinned version {pinned} is missing or corrupt in this server's store, so {UnloadablePinConsequence()}. "
        + "Promote an intact version or send DELETE /manage/v1/pin to a server on the learner's store, or restore the version's files.";

    // A pin names the version the operator chose, so the server never replaces it with another version on its own.
    // Before any version is live, the server therefore stays unready until the pin changes or the version loads.
    private void ReportUnloadablePin(long pinned)
    {
        Volatile.Write(ref unloadablePinVersion, pinned);
        string state = $"{pinned}/{live.CurrentVersion}";
        if (unloadablePin == state)
        {
            return;
        }

        unloadablePin = state;
        LogPinUnloadable(logger, pinned, Store.RootDirectory, UnloadablePinConsequence());
    }

    private string UnloadablePinConsequence() => live.CurrentVersion is long current
        ? $"the live version {current} keeps serving"
        : "no version is served and the server stays unready";

    [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "Cannot read the pinned-version file in {Directory} ({Problem}), so {Action}. Fix or delete the file")]
    private static partial void LogPinUnreadable(ILogger logger, string directory, string problem, string action);

    [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "Pinned version {Pinned} is missing or corrupt in {Directory}, so {Consequence}. Promote an intact version or send DELETE /manage/v1/pin to a server on the learner's store, or restore the version's files")]
    private static partial void LogPinUnloadable(ILogger logger, long pinned, string directory, string consequence);
}
