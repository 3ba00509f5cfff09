using System.Reflection;
using System.Runtime.InteropServices;
using Confluent.Kafka;

namespace ContinualServe.Learner.Kafka;

/// <summary>
/// P/Invoke declarations for the librdkafka mock cluster API (rdkafka_mock.h, librdkafka 2.16.0),
/// bound to the same native file that Confluent.Kafka loaded.
/// </summary>
internal static partial class LibrdkafkaMockNative
{
    // A name of our own so that the resolver below decides which file it maps to.
    private const string LibraryName = "continualserve-librdkafka";

    private const int ErrorStringCapacity = 512;

    private static readonly Lazy<IntPtr> LibraryHandle = new(LoadLibrdkafka, LazyThreadSafetyMode.ExecutionAndPublication);

    // The runtime allows one resolver per assembly and the static constructor runs before
    // the first P/Invoke below, so this is the only place in ContinualServe.Learner that sets one.
    static LibrdkafkaMockNative()
    {
        NativeLibrary.SetDllImportResolver(typeof(LibrdkafkaMockNative).Assembly, ResolveLibrary);
    }

    /// <summary>rd_kafka_type_t value RD_KAFKA_PRODUCER.</summary>
    public const int ProducerType = 0;

    [LibraryImport(LibraryName)]
    public static partial IntPtr rd_kafka_conf_new();

    [LibraryImport(LibraryName)]
    public static partial void rd_kafka_conf_destroy(IntPtr configuration);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int rd_kafka_conf_set(IntPtr configuration, string name, string value, byte* errorString, nuint errorStringSize);

    [LibraryImport(LibraryName)]
    private static unsafe partial IntPtr rd_kafka_new(int type, IntPtr configuration, byte* errorString, nuint errorStringSize);

    [LibraryImport(LibraryName)]
    public static partial void rd_kafka_destroy(IntPtr handle);

    [LibraryImport(LibraryName)]
    public static partial IntPtr rd_kafka_mock_cluster_new(IntPtr handle, int brokerCount);

    [LibraryImport(LibraryName)]
    public static partial void rd_kafka_mock_cluster_destroy(IntPtr cluster);

    [LibraryImport(LibraryName)]
    private static partial IntPtr rd_kafka_mock_cluster_bootstraps(IntPtr cluster);

    [LibraryImport(LibraryName)]
    public static partial void rd_kafka_mock_group_initial_rebalance_delay_ms(IntPtr cluster, int delayMilliseconds);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_mock_broker_set_down(IntPtr cluster, int brokerId);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_mock_broker_set_up(IntPtr cluster, int brokerId);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rd_kafka_mock_topic_create(IntPtr cluster, string topic, int partitionCount, int replicationFactor);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rd_kafka_mock_partition_set_leader(IntPtr cluster, string topic, int partition, int brokerId);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rd_kafka_mock_coordinator_set(IntPtr cluster, string keyType, string key, int brokerId);

    [LibraryImport(LibraryName)]
    public static partial void rd_kafka_mock_start_request_tracking(IntPtr cluster);

    [LibraryImport(LibraryName)]
    public static partial void rd_kafka_mock_clear_requests(IntPtr cluster);

    [LibraryImport(LibraryName)]
    public static partial IntPtr rd_kafka_mock_get_requests(IntPtr cluster, out nuint count);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_mock_request_id(IntPtr request);

    [LibraryImport(LibraryName)]
    public static partial short rd_kafka_mock_request_api_key(IntPtr request);

    /// <summary>Frees each request in the array that <see cref="rd_kafka_mock_get_requests"/> returned, and then the array.</summary>
    [LibraryImport(LibraryName)]
    public static partial void rd_kafka_mock_request_destroy_array(IntPtr requests, nuint count);

    /// <summary>
    /// Sets one configuration property, throwing when librdkafka rejects it
    /// (rd_kafka_conf_res_t is 0 on success).
    /// </summary>
    public static unsafe void SetConfiguration(IntPtr configuration, string name, string value)
    {
        byte* errorString = stackalloc byte[ErrorStringCapacity];
        errorString[0] = 0;
        int result = rd_kafka_conf_set(configuration, name, value, errorString, ErrorStringCapacity);
        if (result != 0)
        {
            string reason = Marshal.PtrToStringUTF8((IntPtr)errorString) ?? string.Empty;
            throw new InvalidOperationException(
                $"librdkafka rejected configuration property '{name}' = '{value}' (rd_kafka_conf_res_t {result}): {reason}");
        }
    }

    /// <summary>
    /// Creates a producer handle that takes ownership of <paramref name="configuration"/> on success.
    /// On failure the caller still owns the configuration and must destroy it.
    /// </summary>
    public static unsafe IntPtr CreateProducerHandle(IntPtr configuration)
    {
        byte* errorString = stackalloc byte[ErrorStringCapacity];
        errorString[0] = 0;
        IntPtr handle = rd_kafka_new(ProducerType, configuration, errorString, ErrorStringCapacity);
        if (handle == IntPtr.Zero)
        {
            string reason = Marshal.PtrToStringUTF8((IntPtr)errorString) ?? string.Empty;
            throw new InvalidOperationException($"rd_kafka_new failed to create the handle for the mock cluster: {reason}");
        }

        return handle;
    }

    /// <summary>
    /// Returns the mock cluster's bootstrap.servers list. librdkafka owns the returned string.
    /// </summary>
    public static string GetBootstrapServers(IntPtr cluster)
    {
        IntPtr bootstraps = rd_kafka_mock_cluster_bootstraps(cluster);
        return Marshal.PtrToStringUTF8(bootstraps)
            ?? throw new InvalidOperationException("rd_kafka_mock_cluster_bootstraps returned no bootstrap servers.");
    }

    private static IntPtr ResolveLibrary(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        return libraryName == LibraryName ? LibraryHandle.Value : IntPtr.Zero;
    }

    // librdkafka.redist ships several builds. librdkafka.so needs libsasl2.so.3, and when that is
    // missing Confluent.Kafka falls back to centos8-librdkafka.so without saying so. A plain
    // DllImport("librdkafka") would then fail, so this loads the file that Confluent.Kafka mapped
    // into the process, which also keeps a single copy of librdkafka loaded.
    private static IntPtr LoadLibrdkafka()
    {
        if (!Library.IsLoaded)
        {
            Library.Load();
        }

        string? mappedPath = FindMappedLibrdkafkaPath();
        if (mappedPath is not null)
        {
            return NativeLibrary.Load(mappedPath);
        }

        // Where /proc/self/maps is unavailable, probe the names Confluent.Kafka tries, in its order,
        // from its own assembly so that the same deps.json native assets apply.
        Assembly confluentAssembly = typeof(Library).Assembly;
        foreach (string candidate in new[] { "librdkafka", "centos8-librdkafka", "alpine-librdkafka" })
        {
            if (NativeLibrary.TryLoad(candidate, confluentAssembly, null, out IntPtr handle))
            {
                return handle;
            }
        }

        throw new DllNotFoundException(
            "Confluent.Kafka reports librdkafka as loaded, but its file was found neither in /proc/self/maps nor by probing "
            + "librdkafka, centos8-librdkafka and alpine-librdkafka. Check that the librdkafka.redist native assets are in the output folder.");
    }

    private static string? FindMappedLibrdkafkaPath()
    {
        const string MapsPath = "/proc/self/maps";
        if (!File.Exists(MapsPath))
        {
            return null;
        }

        foreach (string line in File.ReadLines(MapsPath))
        {
            // Each line ends with the mapped path after five fields: address, permissions, offset, device, inode.
            int pathStart = line.IndexOf('/', StringComparison.Ordinal);
            if (pathStart < 0)
            {
                continue;
            }

            string path = line[pathStart..];
            string fileName = Path.GetFileName(path);
            if (fileName.EndsWith("librdkafka.so", StringComparison.Ordinal)
                || fileName.Contains("librdkafka.so.", StringComparison.Ordinal))
            {
                return path;
            }
        }

        return null;
    }
}
