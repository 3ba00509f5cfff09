using ContinualServe.Learner.Evaluation;
using ContinualServe.Learner.Experiments;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Experiments;

public sealed class ExperimentReportTests : IDisposable
{
    private readonly TemporaryDirectory directory = new("continualserve-report-");

    public void Dispose() => directory.Dispose();

    [Fact]
    public void SummaryAggregatesSeeds()
    {
        ExperimentSummary summary = Summary();

        StrategySummary naive = summary.Strategies[0];
        naive.AverageAccuracy.Mean.ShouldBe(0.5, tolerance: 1e-12);
        naive.AverageAccuracy.StandardDeviation.ShouldBe(Math.Sqrt(0.005), tolerance: 1e-12);
        naive.FirstTaskForgetting.Mean.ShouldBe(0.6, tolerance: 1e-12);
        naive.MeanMatrix[1, 0].ShouldBe(0.3, tolerance: 1e-12);
        double.IsNaN(naive.MeanMatrix[0, 1]).ShouldBeTrue();
        summary.Strategies[1].HasForgetting.ShouldBeFalse();
    }

    [Fact]
    public void WriteKeepsRestOfPage()
    {
        string page = Path.Combine(directory.Path, "results.md");
        File.WriteAllText(page, "# Results\n\n## Demo\n\nkept text\n");

        ExperimentReport.Write(Summary(), page);
        ExperimentReport.Write(Summary(), page);

        string text = File.ReadAllText(page);
        text.ShouldStartWith("# Results\n\n## Demo\n\nkept text\n");
        text.Split("experiment class-incremental: begin").Length.ShouldBe(2);
        text.ShouldContain("| naive | 0.500 ± 0.071 |");
        text.ShouldContain("| joint | 0.900 (one seed) | n/a |");
        foreach (string picture in new[] { "class-incremental-naive-matrix.png", "class-incremental-accuracy-over-stream.png" })
        {
            byte[] bytes = File.ReadAllBytes(Path.Combine(directory.Path, "results", picture));
            bytes[..4].ShouldBe(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' });
            text.ShouldContain("results/" + picture);
        }
    }

    // naive, two seeds: R = [[0.9], [0.3, 0.8]] (ACC 0.55) and [[0.9], [0.3, 0.6]] (ACC 0.45); joint: 0.9.
    private static ExperimentSummary Summary()
    {
        ExperimentResult Naive(int seed, double last)
        {
            var matrix = new AccuracyMatrix();
            matrix.Record(1, new Dictionary<int, double> { [1] = 0.9 });
            matrix.Record(2, new Dictionary<int, double> { [1] = 0.3, [2] = last });
            return new ExperimentResult("naive", seed, matrix, [0.3, last], [new StreamPoint(10, 0.9), new StreamPoint(20, (0.3 + last) / 2)], TimeSpan.FromSeconds(1));
        }

        var joint = new ExperimentResult("joint", 1, null, [0.9, 0.9], [], TimeSpan.FromSeconds(2));
        return ExperimentSummary.From(new ExperimentOptions(), [Naive(1, 0.8), Naive(2, 0.6), joint]);
    }
}
