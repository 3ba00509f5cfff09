using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;

namespace ContinualServe.Server.Hosting;

/// <summary>Operator control of the served version: a version pinned in the store is served instead of the newest.</summary>
public sealed partial class ModelSwapper
{
    /// <summary>The version pinned in the store, or null when the server follows the newest intact version.</summary>
    public long? PinnedVersion => StoreControlFiles.ReadPinnedVersion(Store.RootDirectory);

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
            LogSwapped(logger, modelName, previous ?? 0, version.Number);
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
        return TryFollowPin(out bool swappedToPin) ? swappedToPin : TrySwap(version);
    }

    /// <summary>Serves the pinned version when there is one; returns false when no version is pinned.</summary>
    private bool TryFollowPin(out bool swapped)
    {
        swapped = false;
        long? pinned = PinnedVersion;
        if (pinned is null)
        {
            return false;
        }

        if (live.CurrentVersion != pinned && Store.TryLoad(pinned.Value, out ModelVersion? version))
        {
            swapped = SwapToAny(version!);
        }

        return true;
    }
}
