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

    // The series below copy the label sets and rates that a real run on 127.0.0.1 exported. Learners ran on :18081 and
    // :18181, and replicas on :18091 (healthy), :18094 (no version loaded), :18095 (300 ms batching delay) and :18096
    // (100 ms request timeout), all scraped by one job.
    [Fact]
    public async Task InferenceErrorsNameFailingReplicas()
    {
        // Per minute, the healthy replica returns 200 to 120,000 requests and 400 to 180 bad ones. The replica without a
        // version returns 503 unavailable to 3,000, and the replica with a short deadline returns 503 timeout to 150.
        string series = """
                  - series: 'continualserve_inference_requests_total{instance="127.0.0.1:18091", job="continualserve", model="fashion-mnist", outcome="ok"}'
                    values: '0+120000x20'
                  - series: 'continualserve_inference_requests_total{instance="127.0.0.1:18091", job="continualserve", model="fashion-mnist", outcome="bad_request"}'
                    values: '0+180x20'
                  - series: 'continualserve_inference_requests_total{instance="127.0.0.1:18094", job="continualserve", model="fashion-mnist", outcome="unavailable"}'
                    values: '0+3000x20'
                  - series: 'continualserve_inference_requests_total{instance="127.0.0.1:18096", job="continualserve", model="fashion-mnist", outcome="timeout"}'
                    values: '0+150x20'
            """;
        const string alert = "ContinualServeInferenceErrors";
        Firing[] expected = new[] { "127.0.0.1:18094", "127.0.0.1:18096" }.Select(instance => new Firing(
            new Dictionary<string, string> { ["instance"] = instance, ["model"] = "fashion-mnist" },
            new Dictionary<string, string> { ["summary"] = $"100% of requests to fashion-mnist on {instance} fail on the server side" })).ToArray();

        (int exitCode, string output) = await TestAsync(alert, series, evaluationMinutes: 15, expected);

        exitCode.ShouldBe(0, output);
        output.ShouldContain("SUCCESS");
    }

    [Fact]
    public async Task OverloadAlertNamesSheddingReplica()
    {
        // Per minute, replica :18091 turns away 1,200 of 12,000 requests with 429 (10%) and replica :18092 120 (1%).
        string series = """
                  - series: 'continualserve_inference_requests_total{instance="127.0.0.1:18091", job="continualserve", model="fashion-mnist", outcome="ok"}'
                    values: '0+10800x20'
                  - series: 'continualserve_inference_requests_total{instance="127.0.0.1:18091", job="continualserve", model="fashion-mnist", outcome="rejected"}'
                    values: '0+1200x20'
                  - series: 'continualserve_inference_requests_total{instance="127.0.0.1:18092", job="continualserve", model="fashion-mnist", outcome="ok"}'
                    values: '0+11880x20'
                  - series: 'continualserve_inference_requests_total{instance="127.0.0.1:18092", job="continualserve", model="fashion-mnist", outcome="rejected"}'
                    values: '0+120x20'
            """;
        var expected = new Firing(
            new Dictionary<string, string> { ["instance"] = "127.0.0.1:18091", ["model"] = "fashion-mnist" },
            new Dictionary<string, string> { ["summary"] = "10% of requests to fashion-mnist on 127.0.0.1:18091 get 429 because the queue is full" });

        (int exitCode, string output) = await TestAsync("ContinualServeInferenceOverloaded", series, evaluationMinutes: 20, [expected]);

        exitCode.ShouldBe(0, output);
        output.ShouldContain("SUCCESS");
    }

    [Fact]
    public async Task LatencyAlertNamesSlowReplica()
    {
        // The healthy replica completes 120,000 requests a minute within 1.6 ms and the delayed one 180 within 0.4096 to
        // 0.8192 s. Over both, p99 stays in the fast bucket, so only a quantile per replica finds the slow one.
        string series = string.Join("\n", LatencyBuckets("127.0.0.1:18091", perMinute: 120_000, firstBucketAbove: 0.0016))
            + "\n" + string.Join("\n", LatencyBuckets("127.0.0.1:18095", perMinute: 180, firstBucketAbove: 0.8192));
        var expected = new Firing(
            new Dictionary<string, string> { ["instance"] = "127.0.0.1:18095", ["model"] = "fashion-mnist" },
            new Dictionary<string, string> { ["summary"] = "p99 latency of fashion-mnist on 127.0.0.1:18095 is 815.1ms" });

        (int exitCode, string output) = await TestAsync("ContinualServeInferenceLatencyP99", series, evaluationMinutes: 20, [expected]);

        exitCode.ShouldBe(0, output);
        output.ShouldContain("SUCCESS");
    }

    [Fact]
    public async Task DeadLetterRatioSkipsDiscardedExamples()
    {
        // A learner whose candidates are all rejected counts each trained example again as discarded. Per minute it
        // trains 100, holds out 10 and sends 1.5 invalid records to the dead-letter topic: 1.345% of the 111.5 consumed.
        string series = """
                  - series: 'continualserve_learner_examples_total{instance="127.0.0.1:18181", job="continualserve", outcome="trained"}'
                    values: '0+100x30'
                  - series: 'continualserve_learner_examples_total{instance="127.0.0.1:18181", job="continualserve", outcome="discarded"}'
                    values: '0+100x30'
                  - series: 'continualserve_learner_examples_total{instance="127.0.0.1:18181", job="continualserve", outcome="holdout"}'
                    values: '0+10x30'
                  - series: 'continualserve_learner_examples_total{instance="127.0.0.1:18181", job="continualserve", outcome="invalid"}'
                    values: '0+1.5x30'
                  - series: 'continualserve_dead_letters_total{instance="127.0.0.1:18181", job="continualserve"}'
                    values: '0+1.5x30'
            """;
        var expected = new Firing(
            new Dictionary<string, string> { ["instance"] = "127.0.0.1:18181" },
            new Dictionary<string, string> { ["summary"] = "1.345% of consumed records go to the dead-letter topic" });

        (int exitCode, string output) = await TestAsync("ContinualServeDeadLetterRatio", series, evaluationMinutes: 25, [expected]);

        exitCode.ShouldBe(0, output);
        output.ShouldContain("SUCCESS");
    }

    [Fact]
    public async Task RejectionAlertCountsFirstRejection()
    {
        // The learner exports promotions_total{decision="rejected"} at 0 from its start, so the first of three rejections
        // counts and the summary rounds the extrapolated increase to a whole number.
        string series = """
                  - series: 'continualserve_promotions_total{decision="rejected", instance="127.0.0.1:18181", job="continualserve"}'
                    values: '0x5 1x5 2x5 3x5'
                  - series: 'continualserve_promotions_total{decision="promoted", instance="127.0.0.1:18181", job="continualserve"}'
                    values: '0x20'
            """;
        var expected = new Firing(
            new Dictionary<string, string> { ["instance"] = "127.0.0.1:18181" },
            new Dictionary<string, string> { ["summary"] = "3 candidate versions rejected in the last hour" });

        (int exitCode, string output) = await TestAsync("ContinualServePromotionsRejected", series, evaluationMinutes: 20, [expected]);

        exitCode.ShouldBe(0, output);
        output.ShouldContain("SUCCESS");
    }

    [Fact]
    public async Task DeadLetterFailureAlertFiresOnFirstFailure()
    {
        // The unlabeled failure counter is exported at 0 from the learner's start, so one failure is an increase.
        string series = """
                  - series: 'continualserve_dead_letter_failures_total{instance="127.0.0.1:18181", job="continualserve"}'
                    values: '0x5 1x10'
                  - series: 'continualserve_dead_letter_failures_total{instance="127.0.0.1:18091", job="continualserve"}'
                    values: '0x15'
            """;

        var expected = new Firing(
            new Dictionary<string, string> { ["instance"] = "127.0.0.1:18181" },
            new Dictionary<string, string>
            {
                ["description"] = "1 dead letters on 127.0.0.1:18181 could not be written in 10 minutes (rejected by the producer, not acknowledged by the broker, or unsent at a stop); those invalid records are only in the learner's logs.",
            });

        (int exitCode, string output) = await TestAsync("ContinualServeDeadLetterWriteFailures", series, evaluationMinutes: 8, [expected]);

        exitCode.ShouldBe(0, output);
        output.ShouldContain("SUCCESS");
    }

    [Fact]
    public async Task CertificateAlertNamesSoonExpiringSetting()
    {
        // At 10 minutes, time() is 600: the first certificate has 13 days, 23 hours and 40 minutes left, the second 20
        // days, and the third expired 5 minutes ago, which the other certificate alert reports.
        string series = """
                  - series: 'continualserve_https_certificate_expiry_timestamp_seconds{instance="127.0.0.1:18181", job="continualserve", setting="Kestrel:Certificates:Default:Path"}'
                    values: '1209000x15'
                  - series: 'continualserve_https_certificate_expiry_timestamp_seconds{instance="127.0.0.1:18091", job="continualserve", setting="Kestrel:Certificates:Default:Path"}'
                    values: '1728600x15'
                  - series: 'continualserve_https_certificate_expiry_timestamp_seconds{instance="127.0.0.1:18095", job="continualserve", setting="Kestrel:Certificates:Default:Path"}'
                    values: '300x15'
            """;
        var expected = new Firing(
            new Dictionary<string, string> { ["instance"] = "127.0.0.1:18181", ["setting"] = "Kestrel:Certificates:Default:Path" },
            new Dictionary<string, string>
            {
                ["summary"] = "The HTTPS certificate of Kestrel:Certificates:Default:Path on 127.0.0.1:18181 expires in 13d 23h 40m 0s",
            });

        (int exitCode, string output) = await TestAsync("ContinualServeCertificateExpiresSoon", series, evaluationMinutes: 10, [expected]);

        exitCode.ShouldBe(0, output);
        output.ShouldContain("SUCCESS");
    }

    [Fact]
    public async Task ExpiredCertificateAlertFiresOnlyPastExpiry()
    {
        string series = """
                  - series: 'continualserve_https_certificate_expiry_timestamp_seconds{instance="127.0.0.1:18181", job="continualserve", setting="Kestrel:Endpoints:Api:Certificate:Path"}'
                    values: '300x15'
                  - series: 'continualserve_https_certificate_expiry_timestamp_seconds{instance="127.0.0.1:18091", job="continualserve", setting="Kestrel:Certificates:Default:Path"}'
                    values: '900x15'
            """;
        var expected = new Firing(
            new Dictionary<string, string> { ["instance"] = "127.0.0.1:18181", ["setting"] = "Kestrel:Endpoints:Api:Certificate:Path" },
            new Dictionary<string, string>());

        (int exitCode, string output) = await TestAsync("ContinualServeCertificateExpired", series, evaluationMinutes: 10, [expected]);

        exitCode.ShouldBe(0, output);
        output.ShouldContain("SUCCESS");
    }

    /// <summary>
    /// Returns the cumulative bucket series of continualserve_inference_duration_seconds for one replica whose requests
    /// all take longer than the bucket below <paramref name="firstBucketAbove"/>, with the server's bucket bounds.
    /// </summary>
    private static IEnumerable<string> LatencyBuckets(string instance, int perMinute, double firstBucketAbove)
    {
        IEnumerable<string> bounds = Enumerable.Range(0, 16)
            .Select(index => 0.0001 * Math.Pow(2, index))
            .Select(bound => bound.ToString("R", System.Globalization.CultureInfo.InvariantCulture))
            .Append("+Inf");
        foreach (string bound in bounds)
        {
            bool counted = bound == "+Inf" || double.Parse(bound, System.Globalization.CultureInfo.InvariantCulture) >= firstBucketAbove - 1e-12;
            string values = counted ? $"0+{perMinute}x25" : "0x25";
            yield return $$"""
                      - series: 'continualserve_inference_duration_seconds_bucket{instance="{{instance}}", job="continualserve", model="fashion-mnist", le="{{bound}}"}'
                        values: '{{values}}'
                """;
        }
    }

    private sealed record Firing(IReadOnlyDictionary<string, string> Labels, IReadOnlyDictionary<string, string> Annotations);

    /// <summary>
    /// Writes a promtool unit test over the plain rules file that expects <paramref name="alert"/> to fire for
    /// <paramref name="firingInstance"/> alone after <paramref name="evaluationMinutes"/>, with the annotations the rules
    /// file gives it, and runs it.
    /// </summary>
    private Task<(int ExitCode, string Output)> TestAsync(string alert, string series, int evaluationMinutes, string firingInstance) =>
        TestAsync(alert, series, evaluationMinutes, [new Firing(new Dictionary<string, string> { ["instance"] = firingInstance }, new Dictionary<string, string>())]);

    /// <summary>
    /// Writes a promtool unit test over the plain rules file that expects <paramref name="alert"/> to fire once per entry
    /// of <paramref name="firing"/> after <paramref name="evaluationMinutes"/>, and runs it. Each alert gets the rule's
    /// labels and annotations with <c>{{ $labels.NAME }}</c> expanded from its labels, and the entry's annotations
    /// replace those that expand <c>$value</c>.
    /// </summary>
    private async Task<(int ExitCode, string Output)> TestAsync(string alert, string series, int evaluationMinutes, IReadOnlyList<Firing> firing)
    {
        YamlMappingNode rule = Rule(alert);
        var labels = (YamlMappingNode)rule["labels"];
        var annotations = (YamlMappingNode)rule["annotations"];
        var expectedAlerts = new List<string>();
        foreach (Firing one in firing)
        {
            string Expanded(YamlNode value)
            {
                string text = ((YamlScalarNode)value).Value!;
                foreach ((string name, string labelValue) in one.Labels)
                {
                    text = text.Replace("{{ $labels." + name + " }}", labelValue, StringComparison.Ordinal);
                }

                return Quote(text);
            }

            string expectedLabels = string.Join(
                "\n",
                one.Labels.Select(pair => $"              {pair.Key}: {Quote(pair.Value)}")
                    .Concat(labels.Children.Select(pair => $"              {pair.Key}: {Expanded(pair.Value)}")));
            string expectedAnnotations = string.Join(
                "\n",
                annotations.Children.Select(pair => one.Annotations.TryGetValue(((YamlScalarNode)pair.Key).Value!, out string? given)
                    ? $"              {pair.Key}: {Quote(given)}"
                    : $"              {pair.Key}: {Expanded(pair.Value)}"));
            expectedAlerts.Add($"""
                          - exp_labels:
                {expectedLabels}
                            exp_annotations:
                {expectedAnnotations}
                """);
        }

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
            {string.Join("\n", expectedAlerts)}
            """);
        return await Promtool.RunAsync("test", "rules", file);
    }

    private static YamlMappingNode Rule(string alert) =>
        MonitoringExpressions.RulesGroups(RepositoryPaths.RulesFile, crd: false).Children.Cast<YamlMappingNode>()
            .SelectMany(group => ((YamlSequenceNode)group["rules"]).Children.Cast<YamlMappingNode>())
            .Single(rule => ((YamlScalarNode)rule["alert"]).Value == alert);

    private static string Quote(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";
}
