using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using ContinualServe.Learner.Data;
using ContinualServe.Model;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Server.Benchmarking;
using ContinualServe.Server.Hosting;
using TorchSharp;

namespace ContinualServe.Benchmarks;

/// <summary>Serving comparisons: throughput, latency, binary payloads, swaps under load and memory over swaps.</summary>
internal static class Serving
{
    public static async Task CompareAsync(string architecture, IdxDataset test, LoadClient client, Report report)
    {
        ModelSpec spec = Contenders.Spec(architecture);
        ModelStore store = Contenders.StoreWithVersions(spec, 1);
        await using WebApplication continualServe = await Contenders.StartContinualServeAsync(store).ConfigureAwait(false);
        await using WebApplication naive = await Contenders.StartNaiveAsync(store).ConfigureAwait(false);
        await using WebApplication echo = await Contenders.StartEchoAsync().ConfigureAwait(false);
        byte[] json = JsonBody(test, 1);

        // Warm every contender up first, so that tiered compilation does not count against whichever runs first.
        foreach (WebApplication contender in new[] { continualServe, naive, echo })
        {
            await client.RunAsync(Contenders.InferUri(contender), json, 64, warmUp: true).ConfigureAwait(false);
        }

        (LoadResult served64, _) = await client.RunAsync(Contenders.InferUri(continualServe), json, 64).ConfigureAwait(false);
        (LoadResult naive64, _) = await client.RunAsync(Contenders.InferUri(naive), json, 64).ConfigureAwait(false);
        (LoadResult echo64, double echoServerCpu) = await client.RunAsync(Contenders.InferUri(echo), json, 64).ConfigureAwait(false);
        (LoadResult served1, _) = await client.RunAsync(Contenders.InferUri(continualServe), json, 1).ConfigureAwait(false);
        (LoadResult naive1, _) = await client.RunAsync(Contenders.InferUri(naive), json, 1).ConfigureAwait(false);
        (byte[] binary, int headerLength) = BinaryBody(test, 64);
        (LoadResult binary64, _) = await client.RunAsync(Contenders.InferUri(continualServe), binary, 8, "application/octet-stream", headerLength).ConfigureAwait(false);
        double inProcessItems = InProcessItemsPerSecond(store, test, 64, TimeSpan.FromSeconds(3));

        bool cnn = architecture == ModelFactory.CnnArchitecture;
        report.Table($"Serving, {architecture.ToUpperInvariant()} ({spec.FeatureCount}-{string.Join("-", spec.HiddenSizes)}-{spec.ClassCount})");
        report.Row("ContinualServe, JSON, 1 item, 64 clients", $"{Report.Number(served64.RequestsPerSecond)} requests/s ({served64.Failed} failed)", "", "");
        report.Row("naive endpoint, same load", $"{Report.Number(naive64.RequestsPerSecond)} requests/s", Report.Ratio(served64.RequestsPerSecond / naive64.RequestsPerSecond, cnn ? 1.1 : 1.0), cnn ? ">= 1.1x naive" : ">= 1.0x naive");
        report.Row("echo endpoint (no model), same load", $"{Report.Number(echo64.RequestsPerSecond)} requests/s, server CPU {echoServerCpu * 1e6 / Math.Max(1, echo64.Succeeded):F0} us/request", Report.Ratio(served64.RequestsPerSecond / echo64.RequestsPerSecond, cnn ? 0.6 : 0.85), cnn ? ">= 0.6x echo" : ">= 0.85x echo");
        report.Row("p50 latency, 1 client", $"{served1.P50Milliseconds:F3} ms (naive {naive1.P50Milliseconds:F3} ms)", Report.Ratio(served1.P50Milliseconds / naive1.P50Milliseconds, 1.1, higherIsBetter: false), "<= 1.1x naive");
        report.Row("binary, 64 items per request, 8 clients", $"{Report.Number(binary64.RequestsPerSecond * 64)} items/s (in-process forward {Report.Number(inProcessItems)} items/s)", Report.Ratio(binary64.RequestsPerSecond * 64 / inProcessItems, 0.5), ">= 0.5x in-process");
        report.Row("load client CPU share (64 clients, ContinualServe)", $"{served64.ClientCpuSeconds:F1} s of {served64.ElapsedSeconds:F1} s wall", "", "");
    }

    // Quiet and swapping load windows alternate, so a slow drift in the shared machine's load affects both kinds
    // alike. The ratio compares the median p99 of each kind.
    public static async Task MeasureSwapsAsync(IdxDataset test, LoadClient client, Report report)
    {
        const int Swaps = 100;
        const int WindowPairs = 4;
        ModelSpec spec = Contenders.Spec(ModelFactory.MlpArchitecture);
        ModelStore store = Contenders.StoreWithVersions(spec, Swaps + 2);
        await using WebApplication app = await Contenders.StartContinualServeAsync(store).ConfigureAwait(false);
        ModelSwapper swapper = app.Services.GetRequiredService<ModelSwapper>();
        LiveModel live = app.Services.GetRequiredService<LiveModel>();
        store.TryLoad(1, out ModelVersion? first);
        live.Swap(ServedModel.Load(first!, torch.CPU));
        byte[] json = JsonBody(test, 1);
        Uri target = Contenders.InferUri(app);

        List<LoadResult> quietWindows = [];
        List<LoadResult> swapWindows = [];
        long nextVersion = 2;
        for (int pair = 0; pair < WindowPairs; pair++)
        {
            (LoadResult quiet, _) = await client.RunAsync(target, json, 16).ConfigureAwait(false);
            quietWindows.Add(quiet);
            long lastVersion = nextVersion + (Swaps / WindowPairs) - 1;
            Task swapping = SwapDuringAsync(store, swapper, nextVersion, lastVersion, client.Duration);
            (LoadResult swapped, _) = await client.RunAsync(target, json, 16).ConfigureAwait(false);
            await swapping.ConfigureAwait(false);
            swapWindows.Add(swapped);
            nextVersion = lastVersion + 1;
        }

        double quietP99 = Median(quietWindows.Select(window => window.P99Milliseconds));
        double swapP99 = Median(swapWindows.Select(window => window.P99Milliseconds));
        report.Table($"Hot swaps under load (MLP, JSON, 16 clients, {WindowPairs} quiet and {WindowPairs} swapping windows alternating)");
        report.Row("p99 without swaps, median of windows", $"{quietP99:F2} ms (windows: {P99List(quietWindows)}; {Report.Number(quietWindows.Average(window => window.RequestsPerSecond))} requests/s)", "", "");
        report.Row($"p99 during {live.CurrentVersion - 1} swaps, median of windows", $"{swapP99:F2} ms (windows: {P99List(swapWindows)}; {Report.Number(swapWindows.Average(window => window.RequestsPerSecond))} requests/s)", Report.Ratio(swapP99 / quietP99, 1.2, higherIsBetter: false), "<= 1.2x without swaps");
        report.Row("failed requests during swaps", swapWindows.Sum(window => window.Failed).ToString(CultureInfo.InvariantCulture), "", "0");
    }

    // Swaps in versions first to last, spread evenly over the middle 80% of a load window of the given length.
    private static async Task SwapDuringAsync(ModelStore store, ModelSwapper swapper, long first, long last, TimeSpan window)
    {
        TimeSpan interval = window * 0.8 / (last - first + 1);
        await Task.Delay(window * 0.1).ConfigureAwait(false);
        for (long version = first; version <= last; version++)
        {
            store.TryLoad(version, out ModelVersion? next);
            swapper.TrySwap(next!);
            await Task.Delay(interval).ConfigureAwait(false);
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = values.Order().ToArray();
        int middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    private static string P99List(IEnumerable<LoadResult> windows) =>
        string.Join(", ", windows.Select(window => window.P99Milliseconds.ToString("F2", CultureInfo.InvariantCulture)));

    public static void MeasureSwapMemory(Report report)
    {
        ModelSpec spec = Contenders.Spec(ModelFactory.MlpArchitecture);
        ModelStore store = Contenders.StoreWithVersions(spec, 2);
        store.TryLoad(1, out ModelVersion? first);
        store.TryLoad(2, out ModelVersion? second);
        using var live = new LiveModel();
        var features = new float[784];
        var probabilities = new float[10];
        long after10 = 0;
        for (int swap = 1; swap <= 1000; swap++)
        {
            live.Swap(ServedModel.Load(swap % 2 == 0 ? first! : second!, torch.CPU));
            live.TryAcquire(out ModelLease lease);
            using (lease)
            {
                lease.Model.Predict(features, 1, probabilities);
            }

            if (swap == 10)
            {
                after10 = ResidentBytes();
            }
        }

        long after1000 = ResidentBytes();
        report.Table("Native memory over swaps (MLP)");
        report.Row("RSS after 10 swaps", $"{after10 / (1024 * 1024)} MiB", "", "");
        report.Row("RSS after 1,000 swaps", $"{after1000 / (1024 * 1024)} MiB", Report.Ratio((double)after1000 / after10, 1.05, higherIsBetter: false), "< 1.05x (growth < 5%)");
    }

    private static long ResidentBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GlibcMalloc.ResidentBytes();
    }

    private static double InProcessItemsPerSecond(ModelStore store, IdxDataset test, int batch, TimeSpan duration)
    {
        store.TryLoad(1, out ModelVersion? version);
        ServedModel model = ServedModel.Load(version!, torch.CPU);
        float[] features = Features(test, batch);
        var probabilities = new float[batch * model.Spec.ClassCount];
        long items = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration)
        {
            model.Predict(features, batch, probabilities);
            items += batch;
        }

        using var live = new LiveModel();
        live.Swap(model);
        return items / clock.Elapsed.TotalSeconds;
    }

    private static float[] Features(IdxDataset test, int count)
    {
        var features = new float[count * test.FeatureCount];
        for (int index = 0; index < count; index++)
        {
            ReadOnlySpan<byte> image = test.Image(index);
            for (int pixel = 0; pixel < image.Length; pixel++)
            {
                features[(index * test.FeatureCount) + pixel] = image[pixel];
            }
        }

        return features;
    }

    private static byte[] JsonBody(IdxDataset test, int count)
    {
        float[] features = Features(test, count);
        string data = string.Join(",", features.Select(value => value.ToString(CultureInfo.InvariantCulture)));
        return Encoding.UTF8.GetBytes($"{{\"inputs\":[{{\"name\":\"input\",\"shape\":[{count},{test.FeatureCount}],\"datatype\":\"FP32\",\"data\":[{data}]}}]}}");
    }

    private static (byte[] Body, int HeaderLength) BinaryBody(IdxDataset test, int count)
    {
        float[] features = Features(test, count);
        byte[] header = Encoding.UTF8.GetBytes(
            $"{{\"inputs\":[{{\"name\":\"input\",\"shape\":[{count},{test.FeatureCount}],\"datatype\":\"FP32\",\"parameters\":{{\"binary_data_size\":{features.Length * 4}}}}}],\"parameters\":{{\"binary_data_output\":true}}}}");
        var body = new byte[header.Length + (features.Length * 4)];
        header.CopyTo(body, 0);
        for (int index = 0; index < features.Length; index++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(body.AsSpan(header.Length + (index * 4)), features[index]);
        }

        return (body, header.Length);
    }
}
