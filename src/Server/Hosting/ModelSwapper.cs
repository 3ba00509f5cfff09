using ContinualServe.Model;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Model.Telemetry;
using Microsoft.Extensions.Options;
using TorchSharp;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// Loads versions from the model store and swaps them into the <see cref="LiveModel"/>. Loads are serialized,
/// and a version older than or equal to the live one is ignored, so announcements may arrive late or twice.
/// The load lock also covers each read or write of the pin file together with the swap that follows it.
/// </summary>
public sealed partial class ModelSwapper
{
    private readonly LiveModel live;
    private readonly ILogger<ModelSwapper> logger;
    private readonly Lock loadLock = new();
    private readonly string modelName;
    private readonly torch.Device device;
    private volatile bool followsVersionTopic;

    public ModelSwapper(LiveModel live, IOptions<ServerOptions> options, ILogger<ModelSwapper> logger, ILogger<ModelStore>? storeLogger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.live = live;
        this.logger = logger;
        modelName = options.Value.ModelName;
        device = DeviceSelector.Resolve(options.Value.Device);
        if (options.Value.IntraOpThreads > 0)
        {
            torch.set_num_threads(options.Value.IntraOpThreads);
        }

        Store = OpenStore(options.Value.StoreDirectory, () => new ModelStore(options.Value.StoreDirectory, logger: storeLogger));
    }

    /// <summary>
    /// Runs <paramref name="open"/> and reports a directory that cannot be created or read as invalid configuration,
    /// naming the directory, rather than as an unhandled exception.
    /// </summary>
    public static T OpenStore<T>(string directory, Func<T> open)
    {
        ArgumentNullException.ThrowIfNull(open);
        try
        {
            return open();
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            throw new InvalidConfigurationException(
                $"The model store directory '{directory}' cannot be used: {exception.Message} Set --store to a directory this process can write.",
                exception);
        }
    }

    public ModelStore Store { get; }

    /// <summary>
    /// True once a replica's version subscriber has read the version topic to its end. From then on the subscriber
    /// alone decides which unpinned version serves, because the newest version in this store may be one the learner no
    /// longer announces (the version a rollback pinned away from).
    /// </summary>
    public bool FollowsVersionTopic
    {
        get => followsVersionTopic;
        set => followsVersionTopic = value;
    }

    /// <summary>
    /// Verifies and loads the pinned version if one is pinned, else, unless <see cref="FollowsVersionTopic"/>, the newest
    /// intact version if it is newer than the live one.
    /// </summary>
    public bool TrySwapToLatest()
    {
        lock (loadLock)
        {
            if (TryFollowPin(out bool swappedToPin))
            {
                return swappedToPin;
            }

            if (FollowsVersionTopic)
            {
                return false;
            }

            // Versions at or below the live one are not read: with a corrupt newest version, every poll would otherwise
            // go on to hash the live version's weights too.
            ModelVersion? version = Store.TryLoadLatest(newerThan: live.CurrentVersion ?? 0);
            return version is not null && TrySwap(version);
        }
    }

    /// <summary>Loads <paramref name="version"/> and makes it live unless a newer one already is.</summary>
    public bool TrySwap(ModelVersion version)
    {
        ArgumentNullException.ThrowIfNull(version);
        lock (loadLock)
        {
            long? previous = live.CurrentVersion;
            if (previous >= version.Number)
            {
                return false;
            }

            ServedModel model = ServedModel.Load(version, device);
            live.Swap(model);
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

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Model {Model} swapped from version {PreviousVersion} to {Version}")]
    private static partial void LogSwapped(ILogger logger, string model, long previousVersion, long version);

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Model {Model} now serves version {Version}, its first")]
    private static partial void LogFirstLoaded(ILogger logger, string model, long version);
}
