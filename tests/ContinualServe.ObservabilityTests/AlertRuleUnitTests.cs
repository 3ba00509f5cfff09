using Shouldly;
using Xunit;
using YamlDotNet.RepresentationModel;

namespace ContinualServe.ObservabilityTests;

/// <summary>
/// Alert rules evaluated by promtool's rule unit tests on series written here, for alerts whose conditions the observed
/// pipeline never meets. promtool compares the labels and the expanded annotations of the alerts that fire.
/// </summary>
public sealed class AlertRuleUnitTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-promtool-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public async Task DownloadAlertFiresForFailingReplica()
    {
        // Replica a fails once a minute. Replica b fails as often, but a download succeeds at minute 12, and replica c
        // failed only in its first 3 minutes. At minute 20 only a has failures and no success in the last 15 minutes.
        const string alert = "ContinualServeReplicaDownloadsFailing";
        string series = """
                  - series: 'continualserve_model_downloads_total{instance="a", outcome="failed"}'
                    values: '0+1x25'
                  - series: 'continualserve_model_downloads_total{instance="b", outcome="corrupt"}'
                    values: '0+1x25'
                  - series: 'continualserve_model_downloads_total{instance="b", outcome="ok"}'
                    values: '0x12 1x13'
                  - series: 'continualserve_model_downloads_total{instance="c", outcome="failed"}'
                    values: '0+1x3 3x22'
            """;

        (int exitCode, string output) = await TestAsync(alert, series, evaluationMinutes: 20, firingInstance: "a");

        exitCode.ShouldBe(0, output);
        output.ShouldContain("SUCCESS");
    }

    [Fact]
    public async Task DownloadAlertSkipsRecoveredReplica()
    {
        // The same unit test expecting the alert for replica b, whose download succeeded, must fail.
        string series = """
                  - series: 'continualserve_model_downloads_total{instance="b", outcome="failed"}'
                    values: '0+1x25'
                  - series: 'continualserve_model_downloads_total{instance="b", outcome="ok"}'
                    values: '0x12 1x13'
            """;

        (int exitCode, string output) = await TestAsync("ContinualServeReplicaDownloadsFailing", series, evaluationMinutes: 20, firingInstance: "b");

        exitCode.ShouldNotBe(0, output);
        output.ShouldContain("got:[]");
    }

    [Fact]
    public async Task DownloadAlertClearsAfterFirstSuccess()
    {
        // prometheus-net exports a labeled series from its first increment, so a replica's "ok" series appears with the
        // value 1 at its first successful download, and increase() counts nothing for a series' first sample. Replica d
        // fails from minute 1 to minute 8 and downloads a version at minute 9, so at minute 12 it must not alert.
        string series = """
                  - series: 'continualserve_model_downloads_total{instance="d", outcome="failed"}'
                    values: '_ 1+1x7 8x17'
                  - series: 'continualserve_model_downloads_total{instance="d", outcome="ok"}'
                    values: '_x9 1x16'
            """;

        (int exitCode, string output) = await TestAsync("ContinualServeReplicaDownloadsFailing", series, evaluationMinutes: 12, firingInstance: "d");

        exitCode.ShouldNotBe(0, output);
        output.ShouldContain("got:[]");
    }

    [Fact]
    public async Task DownloadAlertClearsAfterReplicaRestart()
    {
        // Replica e downloads until minute 5 and restarts, so its series are stale until the new process fails from
        // minute 8 and then downloads at minute 11 with its counters back at 1.
        string series = """
                  - series: 'continualserve_model_downloads_total{instance="e", outcome="ok"}'
                    values: '1+1x5 _x5 1x14'
                  - series: 'continualserve_model_downloads_total{instance="e", outcome="failed"}'
                    values: '_x8 1+1x2 3x14'
            """;

        (int exitCode, string output) = await TestAsync("ContinualServeReplicaDownloadsFailing", series, evaluationMinutes: 13, firingInstance: "e");

        exitCode.ShouldNotBe(0, output);
        output.ShouldContain("got:[]");
    }

    [Fact]
    public async Task DownloadAlertFiresAfterRestartWithoutSuccess()
    {
        // Replica f downloaded until minute 5 and restarted, and the new process only fails from minute 8. At minute 22
        // its last success lies outside the 15-minute window, and its "ok" series is stale, so the alert fires.
        string series = """
                  - series: 'continualserve_model_downloads_total{instance="f", outcome="ok"}'
                    values: '1+1x5'
                  - series: 'continualserve_model_downloads_total{instance="f", outcome="failed"}'
                    values: '_x8 1+1x20'
            """;

        (int exitCode, string output) = await TestAsync("ContinualServeReplicaDownloadsFailing", series, evaluationMinutes: 22, firingInstance: "f");

        exitCode.ShouldBe(0, output);
        output.ShouldContain("SUCCESS");
    }

    /// <summary>
    /// Writes a promtool unit test over the plain rules file that expects <paramref name="alert"/> to fire for
    /// <paramref name="firingInstance"/> alone after <paramref name="evaluationMinutes"/>, with the annotations the rules
    /// file gives it, and runs it.
    /// </summary>
    private async Task<(int ExitCode, string Output)> TestAsync(string alert, string series, int evaluationMinutes, string firingInstance)
    {
        YamlMappingNode rule = Rule(alert);
        var labels = (YamlMappingNode)rule["labels"];
        var annotations = (YamlMappingNode)rule["annotations"];
        string Expanded(YamlNode value) => Quote(((YamlScalarNode)value).Value!.Replace("{{ $labels.instance }}", firingInstance, StringComparison.Ordinal));
        string expectedLabels = string.Join("\n", labels.Children.Select(pair => $"              {pair.Key}: {Expanded(pair.Value)}"));
        string expectedAnnotations = string.Join("\n", annotations.Children.Select(pair => $"              {pair.Key}: {Expanded(pair.Value)}"));
        string file = Path.Combine(directory, "rules-test.yaml");
        await File.WriteAllTextAsync(file, $"""
            rule_files:
              - {RepositoryPaths.RulesFile}
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:
            {series}
                alert_rule_test:
                  - eval_time: {evaluationMinutes}m
                    alertname: {alert}
                    exp_alerts:
                      - exp_labels:
                          instance: {firingInstance}
            {expectedLabels}
                        exp_annotations:
            {expectedAnnotations}
            """);
        return await Promtool.RunAsync("test", "rules", file);
    }

    private static YamlMappingNode Rule(string alert) =>
        MonitoringExpressions.RulesGroups(RepositoryPaths.RulesFile, crd: false).Children.Cast<YamlMappingNode>()
            .SelectMany(group => ((YamlSequenceNode)group["rules"]).Children.Cast<YamlMappingNode>())
            .Single(rule => ((YamlScalarNode)rule["alert"]).Value == alert);

    private static string Quote(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";
}
