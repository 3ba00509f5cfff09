using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Promotion;
using ContinualServe.Learner.Training;

namespace ContinualServe.Server.Demo;

/// <summary>Settings of <c>continualserve demo</c>.</summary>
public sealed class DemoOptions
{
    public const string DefaultDataDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>
    /// Maximum of <see cref="Clients"/>, because 100,000 clients exhausted memory. The value is chosen, not measured:
    /// the clients share the machine with the learner and the server.
    /// </summary>
    public const int MaxClients = 64;

    /// <summary>Maximum of <see cref="KeepRuns"/> other than 0, which keeps all: 100 runs take 3 to 7 GB.</summary>
    public const int MaxKeepRuns = 100;

    /// <summary>Directory with the Fashion-MNIST IDX files (gzip or plain).</summary>
    public string DataDirectory { get; set; } = DefaultDataDirectory;

    /// <summary>Kestrel address; port 0 picks a free port.</summary>
    public string Urls { get; set; } = "http://127.0.0.1:8080";

    /// <summary>Directory for this run's model store and report; a fresh one is created under it.</summary>
    public string RunsDirectory { get; set; } = "runs";

    /// <summary>Run directories kept under <see cref="RunsDirectory"/>, this one included: older ones are deleted once the server listens. 0 keeps all.</summary>
    public int KeepRuns { get; set; } = 5;

    public string Device { get; set; } = "auto";

    /// <summary>Number of Split Fashion-MNIST tasks to stream, from task 1 (at most 5).</summary>
    public int Tasks { get; set; } = 5;

    /// <summary>Concurrent inference clients that run during the stream.</summary>
    public int Clients { get; set; } = 2;

    /// <summary>Pause of each client between two requests.</summary>
    public TimeSpan RequestPause { get; set; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Most records the producer may be ahead of the learner (the embedded broker keeps about 5 MiB per partition).</summary>
    public int MaxLag { get; set; } = 1500;

    /// <summary>Format of the records the demo's producer writes; the learner reads both.</summary>
    public RecordFormat RecordFormat { get; set; } = RecordFormat.Json;

    /// <summary>Examples between two published versions.</summary>
    public int RoundExamples { get; set; } = 1000;

    /// <summary>How often the progress line is printed.</summary>
    public TimeSpan ProgressInterval { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>The whole run is abandoned after this long.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>The strategy's name as <c>--strategy</c> gave it, which labels the run in its report.</summary>
    public string StrategyName { get; set; } = "derpp";

    public TrainerOptions Trainer { get; set; } = new();

    public PromotionOptions Promotion { get; set; } = new();
}
