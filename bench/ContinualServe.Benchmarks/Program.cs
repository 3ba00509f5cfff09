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
// Usage: dotnet ContinualServe.Benchmarks.dll [--seconds S] [--data DIR] [--output FILE]
double seconds = ArgumentValue(args, "--seconds", 5);
string dataDirectory = ArgumentText(args, "--data", "/usr/share/datasets/fashion-mnist");
string output = ArgumentText(args, "--output", Path.Combine("bench", "results", "benchmarks.md"));
torch.set_num_threads(1);

IdxDataset test = IdxDataset.LoadFashionMnist(dataDirectory, training: false);
var client = new LoadClient(Path.Combine(AppContext.BaseDirectory, "continualserve.dll"), TimeSpan.FromSeconds(seconds));
var report = new Report();
report.Line($"Run on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {seconds} s per load, torch threads 1, load client in a separate process.");

foreach (string architecture in new[] { ModelFactory.MlpArchitecture, ModelFactory.CnnArchitecture })
{
    await Serving.CompareAsync(architecture, test, client, report).ConfigureAwait(false);
}

await Serving.MeasureSwapsAsync(test, client, report).ConfigureAwait(false);
Serving.MeasureSwapMemory(report);
Training.Compare(IdxDataset.LoadFashionMnist(dataDirectory, training: true), report);

Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
await File.WriteAllTextAsync(output, report.ToString()).ConfigureAwait(false);
Console.WriteLine($"Report written to {output}");

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
