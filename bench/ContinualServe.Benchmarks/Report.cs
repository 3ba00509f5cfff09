using System.Globalization;
using System.Text;

namespace ContinualServe.Benchmarks;

/// <summary>Markdown report, printed as it grows.</summary>
internal sealed class Report
{
    private readonly StringBuilder text = new();

    public void Line(string line)
    {
        Console.WriteLine(line);
        text.AppendLine(line);
    }

    public void Row(string measure, string value, string ratio, string target) =>
        Line($"| {measure} | {value} | {ratio} | {target} |");

    public void Table(string title)
    {
        Line("");
        Line($"## {title}");
        Line("");
        Line("| measure | value | ratio | target |");
        Line("|---|---|---|---|");
    }

    public static string Number(double value) => value.ToString("N0", CultureInfo.InvariantCulture);

    public static string Ratio(double value, double target, bool higherIsBetter = true)
    {
        bool met = higherIsBetter ? value >= target : value <= target;
        return string.Create(CultureInfo.InvariantCulture, $"{value:F2}x {(met ? "(met)" : "(missed)")}");
    }

    public override string ToString() => text.ToString();
}
