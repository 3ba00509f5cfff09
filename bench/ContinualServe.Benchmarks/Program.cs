using System.Diagnostics;
using System.Globalization;
using System.Text;
using ContinualServe.Benchmarks;
using ContinualServe.Learner.Data;
using ContinualServe.Model;
using ContinualServe.Model.Serving;
using ContinualServe.Model.Store;
using ContinualServe.Server.Benchmarking;
using ContinualServe.Server.Hosting;
using TorchSharp;

// Compares ContinualServe with the alternatives side by side in one run and prints ratios.
// Usage: dotnet ContinualServe.Benchmarks.dll [--seconds S] [--data DIR] [--output FILE] [--only serving|swaps|learner|learner-soak|reverts]
// --only swaps runs the hot-swap part of the serving section alone. The learner soak runs only with --only learner-soak, because it takes several minutes.
// The learner's memory over reverts to the live version runs only with --only reverts; --trim-first runs its arm
// with malloc_trim before the one without.
double seconds = ArgumentValue(args, "--seconds", 5);
string dataDirectory = ArgumentText(args, "--data", "/usr/share/datasets/fashion-mnist");
string output = ArgumentText(args, "--output", Path.Combine("bench", "results", "benchmarks.md"));
string only = ArgumentText(args, "--only", "all");
if (only is not ("all" or "serving" or "swaps" or "learner" or "learner-soak" or "reverts"))
{
    Console.Error.WriteLine($"Invalid --only value '{only}'; expected serving, swaps, learner, learner-soak or reverts.");
    return 2;
}

torch.set_num_threads(1);

// Every model store of the run lies in one folder, deleted when the process exits.
AppDomain.CurrentDomain.ProcessExit += (_, _) => Contenders.DeleteRunDirectory();

var report = new Report();
if (only == "learner-soak")
{
    report.Line($"Run on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, torch threads 1, learner, producer and embedded broker in this process.");
    IdxDataset soakData = IdxDataset.LoadFashionMnist(dataDirectory, training: true);
    LearnerSoak.Run(soakData, "best", passes: 4, report);
    LearnerSoak.Run(soakData, "analytic", passes: 3, report);
    return await WriteReportAsync(output, report).ConfigureAwait(false);
}

if (only == "reverts")
{
    report.Line($"Run on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, torch threads 1, training and reverts on one thread.");
    bool trimFirst = Array.IndexOf(args, "--trim-first") >= 0;
    LearnerReverts.Measure(IdxDataset.LoadFashionMnist(dataDirectory, training: true), trimFirst, report);
    return await WriteReportAsync(output, report).ConfigureAwait(false);
}

IdxDataset test = IdxDataset.LoadFashionMnist(dataDirectory, training: false);
var client = new LoadClient(Path.Combine(AppContext.BaseDirectory, "continualserve.dll"), TimeSpan.FromSeconds(seconds));
report.Line($"Run on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {seconds} s per load, torch threads 1, load client in a separate process.");

if (only is "all" or "serving")
{
    foreach (string architecture in new[] { ModelFactory.MlpArchitecture, ModelFactory.CnnArchitecture })
    {
        await Serving.CompareAsync(architecture, test, client, report).ConfigureAwait(false);
    }
}

if (only is "all" or "serving" or "swaps")
{
    await Serving.MeasureSwapsAsync(test, client, report).ConfigureAwait(false);
    Serving.MeasureSwapMemory(report);
}

if (only is "all" or "learner")
{
    Training.Compare(IdxDataset.LoadFashionMnist(dataDirectory, training: true), report);
}

return await WriteReportAsync(output, report).ConfigureAwait(false);

static async Task<int> WriteReportAsync(string output, Report report)
{
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
    await File.WriteAllTextAsync(output, report.ToString()).ConfigureAwait(false);
    Console.WriteLine($"Report written to {output}");
    return 0;
}

static double ArgumentValue(string[] args, string name, double fallback)
{
    int index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length ? double.Parse(args[index + 1], CultureInfo.InvariantCulture) : fallback;
}

static string ArgumentText(string[] args, string name, string fallback)
{
    int index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : fallback;
}
