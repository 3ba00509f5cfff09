using System.Diagnostics;
using System.Globalization;
using ContinualServe.Learner;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Evaluation;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using ContinualServe.Model.Store;
using ContinualServe.Server.Cli;
using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Spectre.Console;
using TorchSharp;

namespace ContinualServe.Server.Demo;

/// <summary>
/// Runs the whole pipeline in one process: the embedded Kafka broker, the learner, the inference server,
/// a producer streaming Split Fashion-MNIST task after task, and inference clients that run throughout.
/// </summary>
public sealed class DemoRunner
{
    private const string Topic = "fashion-mnist";
    private readonly DemoOptions options;
    private readonly IAnsiConsole console;
    private readonly ILoggerFactory loggerFactory;

    // Set once the inference server listens: from then on the run directory is kept, even when the run fails later.
    private bool serverStarted;

    public DemoRunner(DemoOptions options, IAnsiConsole console, ILoggerFactory loggerFactory)
    {
        this.options = options;
        this.console = console;
        this.loggerFactory = loggerFactory;
    }

    /// <summary>Loads Fashion-MNIST from <see cref="DemoOptions.DataDirectory"/> and runs the demo on it.</summary>
    public Task<DemoResult> RunAsync(CancellationToken cancellation)
    {
        (IdxDataset training, IdxDataset test) = LoadData(options.DataDirectory);
        return RunAsync(training, test, cancellation);
    }

    /// <summary>
    /// Loads the Fashion-MNIST training and test sets. Throws <see cref="InvalidDataException"/>, naming the file, when
    /// one is truncated, not IDX or not Fashion-MNIST.
    /// </summary>
    public static (IdxDataset Training, IdxDataset Test) LoadData(string dataDirectory) =>
        (IdxDataset.LoadFashionMnist(dataDirectory, training: true), IdxDataset.LoadFashionMnist(dataDirectory, training: false));

    /// <summary>Streams <paramref name="training"/> and sends inference requests from <paramref name="test"/>.</summary>
    public async Task<DemoResult> RunAsync(IdxDataset training, IdxDataset test, CancellationToken cancellation)
    {
        long started = Stopwatch.GetTimestamp();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        timeout.CancelAfter(options.Timeout);
        CancellationToken token = timeout.Token;

        string runDirectory = Path.GetFullPath(Path.Combine(options.RunsDirectory, DemoRunRetention.RunName(DateTime.UtcNow)));
        bool runsDirectoryExisted = Directory.Exists(options.RunsDirectory);
        Directory.CreateDirectory(runDirectory);
        serverStarted = false;
        try
        {
            return await RunInDirectoryAsync(runDirectory, training, test, started, token).ConfigureAwait(false);
        }
        catch (Exception) when (!serverStarted)
        {
            // A run that failed before its server listened has no results, so its directory must not count as one of the
            // runs that --keep-runs keeps. The broker, learner and server are disposed by now.
            DeleteFailedRun(runDirectory, deleteRunsDirectory: !runsDirectoryExisted);
            throw;
        }
    }

    private async Task<DemoResult> RunInDirectoryAsync(string runDirectory, IdxDataset training, IdxDataset test, long started, CancellationToken token)
    {
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(logger: loggerFactory.CreateLogger<EmbeddedKafkaBroker>());
        broker.CreateTopic(Topic, partitionCount: 1);
        broker.CreateTopic(Topic + ".dlq", partitionCount: 1);
        console.MarkupLine($"Embedded Kafka broker at [bold]{broker.BootstrapServers.EscapeMarkup()}[/], topic [bold]{Topic}[/], {(options.RecordFormat == RecordFormat.Binary ? "binary" : "JSON")} records");

        LearnerOptions learnerOptions = CreateLearnerOptions(broker.BootstrapServers, runDirectory);
        using var learner = new ContinualLearner(learnerOptions, loggerFactory);

        // Registered for the status page's learner section. The container does not dispose an instance it was given.
        await using WebApplication server = BuildServer(options, learnerOptions.StoreDirectory, builder => builder.Services.AddSingleton(learner));

        ModelSwapper swapper = server.Services.GetRequiredService<ModelSwapper>();
        ModelVersion first = learner.Start();
        swapper.TrySwap(first);
        learner.VersionPublished += version => swapper.TrySwapToPublished(version);
        var stream = new System.Collections.Concurrent.ConcurrentQueue<StreamPoint>();
        learner.VersionPublished += version => stream.Enqueue(StreamPoint.From(version.Manifest));
        await server.StartAsync(token).ConfigureAwait(false);
        serverStarted = true;

        // Older runs are deleted only once this one has started, so that failed starts cannot delete completed runs.
        DeleteOlderRuns(runDirectory);
        Uri baseUri = ListeningAddress(server);
        console.MarkupLine($"Inference server at [bold]{baseUri}[/] (try {baseUri}v2/models/{Topic}); metrics at {baseUri}metrics");
        console.MarkupLine($"Status page at [bold]{baseUri}ui/[/]");
        TrainerOptions trainer = options.Trainer;
        string settings = trainer.IsAnalytic
            ? string.Create(CultureInfo.InvariantCulture, $"{trainer.Strategy}, a ridge head over hidden layers {string.Join('-', learnerOptions.InitialSpec.HiddenSizes)} kept as initialized, no replay buffer, seed {trainer.Seed}")
            : string.Create(CultureInfo.InvariantCulture, $"{trainer.Strategy}, {trainer.BufferKind} buffer of {trainer.ReplayCapacity}, {StepsPerBatch(trainer.StepsPerBatch)} per batch, asymmetric new-example loss {trainer.AsymmetricNewLoss}, LwF weight {trainer.DistillationWeight}, feature learning-rate scale {trainer.FeatureLearningRateScale}, seed {trainer.Seed}");
        console.MarkupLine($"Strategy [bold]{options.StrategyName.EscapeMarkup()}[/]: {settings}");

        var load = new InferenceLoad(test);
        using var stopLoad = CancellationTokenSource.CreateLinkedTokenSource(token);
        Task loadTask = load.RunAsync(new Uri(baseUri, $"v2/models/{Topic}/infer"), options.Clients, options.RequestPause, stopLoad.Token);

        long produced;
        try
        {
            produced = await StreamAndReportAsync(broker.BootstrapServers, training, learner, load, token).ConfigureAwait(false);
            await WaitForFinalVersionAsync(learner, produced, token).ConfigureAwait(false);
        }
        catch (DemoLearnerFailedException)
        {
            await stopLoad.CancelAsync().ConfigureAwait(false);
            await loadTask.ConfigureAwait(false);
            throw;
        }

        PrintProgress(learner.Status, load);

        await stopLoad.CancelAsync().ConfigureAwait(false);
        await loadTask.ConfigureAwait(false);
        learner.Stop(TimeSpan.FromSeconds(30));
        await server.StopAsync(CancellationToken.None).ConfigureAwait(false);

        ModelVersion final = learner.Store.TryLoadLatest() ?? throw new InvalidOperationException("The model store has no intact version after the run.");
        return new DemoResult
        {
            Evaluation = final.Manifest.Evaluation ?? new EvaluationSummary(),
            TestAccuracyByTask = EvaluateOnTestSet(final, test),
            FinalVersion = final.Number,
            FirstVersion = first.Number,
            NewestServedVersion = load.NewestVersion,
            ExamplesProduced = produced,
            ExamplesTrained = learner.Status.Trained,
            ExamplesLost = learner.Status.Lost,
            CandidatesRejected = learner.Status.Rejected,
            RequestsSucceeded = load.Succeeded,
            RequestsFailed = load.Failed,
            RequestsCorrect = load.Correct,
            Duration = Stopwatch.GetElapsedTime(started),
            RunDirectory = runDirectory,
            Label = options.StrategyName,
            Stream = stream.ToArray(),
        };
    }

    /// <summary>
    /// Builds the demo's inference server on <paramref name="storeDirectory"/>. The demo sets no management token, and a
    /// start without one is logged at Information, because the demo leaves the management API off on purpose.
    /// </summary>
    internal static WebApplication BuildServer(DemoOptions options, string storeDirectory, Action<WebApplicationBuilder> configureBuilder) =>
        ServerHost.Build(["--Logging:LogLevel:Default=Warning"], options.Urls, server =>
        {
            server.StoreDirectory = storeDirectory;
            server.Device = options.Device;
        }, pollStore: false, configureBuilder: configureBuilder, warnWithoutManagementToken: false);

    // A run that cannot be deleted does not stop the demo.
    private void DeleteOlderRuns(string currentRun)
    {
        string runs = Path.GetFullPath(options.RunsDirectory).EscapeMarkup();
        try
        {
            IReadOnlyList<string> deleted = DemoRunRetention.DeleteOldest(options.RunsDirectory, options.KeepRuns, currentRun);
            if (deleted.Count > 0)
            {
                console.MarkupLine($"Deleted {deleted.Count} older demo run(s) under {runs} (--keep-runs {options.KeepRuns})");
            }
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            console.MarkupLine($"[yellow]Failed to delete older demo runs under {runs}: {exception.Message.EscapeMarkup()} The demo continues.[/]");
        }
    }

    // Deletes the runs directory too when this run created it, so that a failed first start leaves no empty directory behind.
    private void DeleteFailedRun(string runDirectory, bool deleteRunsDirectory)
    {
        try
        {
            Directory.Delete(runDirectory, recursive: true);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            console.MarkupLine($"[yellow]Failed to delete the directory of this failed run, {runDirectory.EscapeMarkup()}: {exception.Message.EscapeMarkup()}[/]");
            return;
        }

        if (deleteRunsDirectory)
        {
            DeleteIfEmpty(Path.GetDirectoryName(runDirectory)!);
        }
    }

    private static void DeleteIfEmpty(string directory)
    {
        try
        {
            // A non-recursive delete fails on a directory that is not empty, such as one where another demo started a run.
            Directory.Delete(directory);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            // The directory stays, because it contains another run or this process may not delete it.
        }
    }

    private LearnerOptions CreateLearnerOptions(string bootstrapServers, string runDirectory) => new()
    {
        BootstrapServers = bootstrapServers,
        Topic = Topic,
        GroupId = "continualserve-demo",
        StoreDirectory = Path.Combine(runDirectory, "models"),
        Device = options.Device,
        RoundExamples = options.RoundExamples,
        SessionTimeout = TimeSpan.FromSeconds(3),
        Trainer = options.Trainer,
        Promotion = options.Promotion,
        InitialSpec = StrategyPresets.HiddenSizes(options.StrategyName) is { } hiddenSizes ? new ModelSpec { HiddenSizes = hiddenSizes } : new ModelSpec(),
    };

    private async Task<long> StreamAndReportAsync(string bootstrapServers, IdxDataset training, ContinualLearner learner, InferenceLoad load, CancellationToken token)
    {
        var producer = new ExampleProducer(bootstrapServers, Topic, loggerFactory.CreateLogger<ExampleProducer>())
        {
            MaxLag = options.MaxLag,
            MaxTasks = options.Tasks,
            Format = options.RecordFormat,
        };
        using var stopProducing = CancellationTokenSource.CreateLinkedTokenSource(token);
        Task<long> producing = Task.Run(() => producer.ProduceAsync(training, () => learner.Status.Position, null, stopProducing.Token), token);
        using var timer = new PeriodicTimer(options.ProgressInterval);
        while (!producing.IsCompleted)
        {
            await Task.WhenAny(producing, timer.WaitForNextTickAsync(token).AsTask()).ConfigureAwait(false);
            PrintProgress(learner.Status, load);
            if (learner.Failure is not null)
            {
                // The paced producer waits for the learner's position, which no longer moves. WhenAny waits for the
                // producer to end without throwing its cancellation.
                await stopProducing.CancelAsync().ConfigureAwait(false);
                await Task.WhenAny(producing).ConfigureAwait(false);
                ThrowIfLearnerFailed(learner);
            }
        }

        return await producing.ConfigureAwait(false);
    }

    /// <summary>
    /// Throws when the learner stopped on an error. Without this check the demo would wait for records that no learner
    /// handles until <see cref="DemoOptions.Timeout"/> (30 minutes by default) passes.
    /// </summary>
    private static void ThrowIfLearnerFailed(ContinualLearner learner)
    {
        if (learner.Failure is { } failure)
        {
            throw new DemoLearnerFailedException(failure);
        }
    }

    private static async Task WaitForFinalVersionAsync(ContinualLearner learner, long produced, CancellationToken token)
    {
        while (true)
        {
            ThrowIfLearnerFailed(learner);
            ModelVersion? latest = learner.Store.TryLoadLatest();
            long committed = latest?.Manifest.TrainingOffsets.Sum(offset => offset.Offset) ?? 0;

            // A rejected last round leaves its offsets to the next promoted version; the stream is still handled.
            // The status reaches a version only once its checkpoint is written too, which the last progress line shows.
            bool handled = committed >= produced || learner.Status.RoundPosition >= produced;
            if (handled && learner.Status.LatestVersion >= (latest?.Number ?? 0))
            {
                return;
            }

            await Task.Delay(200, token).ConfigureAwait(false);
        }
    }

    private void PrintProgress(LearnerStatus status, InferenceLoad load)
    {
        string accuracies = string.Join(" ", status.AccuracyByTask.OrderBy(pair => pair.Key)
            .Select(pair => string.Create(CultureInfo.InvariantCulture, $"t{pair.Key}={pair.Value:F3}")));
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"task {status.CurrentTask} | consumed {status.Consumed,6} | trained {status.Trained,6} | loss {status.LastLoss,6:F3} | version {status.LatestVersion,3} | holdout accuracy {accuracies} | requests ok {load.Succeeded} failed {load.Failed}"));
    }

    /// <summary>Returns "1 step" or "N steps" for the trainer's optimizer steps on each batch.</summary>
    internal static string StepsPerBatch(int steps) =>
        steps == 1 ? "1 step" : string.Create(CultureInfo.InvariantCulture, $"{steps} steps");

    private static Uri ListeningAddress(WebApplication server)
    {
        IServerAddressesFeature addresses = server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()
            ?? throw new InvalidOperationException("The server reports no listening address.");
        string address = addresses.Addresses.First().Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal);
        return new Uri(address.EndsWith('/') ? address : address + "/");
    }

    private static Dictionary<int, double> EvaluateOnTestSet(ModelVersion version, IdxDataset test)
    {
        var byTask = new Dictionary<int, List<LabeledExample>>();
        for (int index = 0; index < test.Count; index++)
        {
            int label = test.Labels[index];
            int task = SplitTasks.TaskOf(label);
            if (!byTask.TryGetValue(task, out List<LabeledExample>? examples))
            {
                examples = [];
                byTask[task] = examples;
            }

            float[] features = new float[test.FeatureCount];
            ReadOnlySpan<byte> image = test.Image(index);
            for (int position = 0; position < features.Length; position++)
            {
                features[position] = image[position];
            }

            examples.Add(new LabeledExample("test-" + index.ToString(CultureInfo.InvariantCulture), task, label, features));
        }

        using torch.nn.Module<torch.Tensor, torch.Tensor> module = version.LoadModule(torch.CPU);
        var seenTasks = version.Manifest.Evaluation?.Tasks ?? [];
        return byTask.Where(pair => seenTasks.Contains(pair.Key))
            .ToDictionary(pair => pair.Key, pair => HoldoutEvaluator.Accuracy(module, torch.CPU, pair.Value));
    }
}
