using System.Text.Json;
using Shouldly;
using Xunit;
using YamlDotNet.RepresentationModel;

namespace ContinualServe.ObservabilityTests;

/// <summary>Every dashboard and alert expression, run by a real Prometheus against a real server+learner run.</summary>
[Collection(ObservedPipelineGroup.Name)]
public sealed class PrometheusQueryTests(ObservedPipeline pipeline)
{
    // A scrape that misses its 900 ms timeout on a loaded machine marks every series of the target stale, and instant
    // queries of gauges then return nothing until the next scrape a second later. So the panels get three sweeps, 2 s
    // apart, and each panel must return data in the last one. A panel of a metric that only HTTPS listeners export
    // returns nothing here, but Prometheus still parses its query and rejects one that is invalid.
    [Fact]
    public async Task EveryPanelQueryReturnsData()
    {
        IReadOnlyList<MonitoringExpression> targets = MonitoringExpressions.DashboardPanelTargets();
        targets.Count.ShouldBeGreaterThan(20);
        List<string> empty = await EmptyPanelsAsync(targets);
        for (int sweep = 1; sweep < 3 && empty.Count > 0; sweep++)
        {
            await Task.Delay(TimeSpan.FromSeconds(2));
            empty = await EmptyPanelsAsync(targets);
        }

        JsonElement up = await pipeline.Prometheus.QueryAsync("up", CancellationToken.None);
        empty.ShouldBeEmpty($"up: {up}");
    }

    private async Task<List<string>> EmptyPanelsAsync(IReadOnlyList<MonitoringExpression> targets)
    {
        var empty = new List<string>();
        foreach (MonitoringExpression target in targets)
        {
            JsonElement data = await pipeline.Prometheus.QueryAsync(MonitoringExpressions.SubstituteGrafanaVariables(target.Expression), CancellationToken.None);
            bool httpsOnly = MonitoringExpressions.MetricNames(target.Expression).Any(MonitoringExpressions.HttpsOnlyMetrics.Contains);
            if (data.GetProperty("result").GetArrayLength() == 0 && !httpsOnly)
            {
                empty.Add($"{target.Source}: {target.Expression}");
            }
        }

        return empty;
    }

    [Fact]
    public async Task MatrixPanelHasOneSeriesPerCell()
    {
        MonitoringExpression matrix = MonitoringExpressions.DashboardPanelTargets().Single(target => target.Source.Contains("accuracy matrix", StringComparison.Ordinal));
        JsonElement data = await pipeline.Prometheus.QueryAsync(MonitoringExpressions.SubstituteGrafanaVariables(matrix.Expression), CancellationToken.None);

        var cells = data.GetProperty("result").EnumerateArray()
            .Select(series => series.GetProperty("metric").GetProperty("after_task").GetString() + "/" + series.GetProperty("metric").GetProperty("task").GetString())
            .Order()
            .ToArray();
        cells.ShouldBe(["1/1", "2/1", "2/2"]);
    }

    [Fact]
    public async Task VariablesAndSwapAnnotationFindRun()
    {
        JsonElement models = await pipeline.Prometheus.GetAsync("api/v1/label/model/values?match[]=continualserve_model_version", CancellationToken.None);
        models.EnumerateArray().Select(model => model.GetString()).ShouldBe([ObservedPipeline.Topic]);
        JsonElement instances = await pipeline.Prometheus.GetAsync("api/v1/label/instance/values?match[]={__name__=~\"continualserve_.%2B\"}", CancellationToken.None);
        instances.EnumerateArray().Select(instance => instance.GetString()).ShouldBe([pipeline.ServerAddress.Authority]);

        foreach (MonitoringExpression annotation in MonitoringExpressions.DashboardAnnotations())
        {
            JsonElement data = await pipeline.Prometheus.QueryRangeAsync(
                MonitoringExpressions.SubstituteGrafanaVariables(annotation.Expression), pipeline.StartedAt, DateTimeOffset.UtcNow, CancellationToken.None);
            if (annotation.Source.Contains("swaps", StringComparison.Ordinal))
            {
                data.GetProperty("result").GetArrayLength().ShouldBe(1, annotation.Source);
            }
        }
    }

    [Fact]
    public async Task AlertRulesEvaluateAndAreHealthy()
    {
        IReadOnlyList<MonitoringExpression> alerts = MonitoringExpressions.AlertRules();
        alerts.Count.ShouldBe(13);
        foreach (MonitoringExpression alert in alerts)
        {
            // Throws when Prometheus rejects the expression.
            await pipeline.Prometheus.QueryAsync(alert.Expression, CancellationToken.None);
        }

        JsonElement rules = await pipeline.Prometheus.GetAsync("api/v1/rules", CancellationToken.None);
        var loaded = rules.GetProperty("groups").EnumerateArray()
            .SelectMany(group => group.GetProperty("rules").EnumerateArray())
            .ToArray();
        loaded.Select(rule => rule.GetProperty("name").GetString()).Order().ShouldBe(alerts.Select(alert => alert.Source["alert ".Length..]).Order());
        foreach (JsonElement rule in loaded)
        {
            rule.GetProperty("health").GetString().ShouldBe("ok", rule.GetProperty("name").GetString() + ": " + rule.GetRawText());
            rule.GetProperty("lastEvaluation").GetDateTimeOffset().ShouldBeGreaterThan(pipeline.StartedAt);
        }
    }

    [Fact]
    public async Task NotReadyAlertSelectsNotReadyLearner()
    {
        // Learner a reports 0 and learner b reports 1: only a is selected.
        string?[] selected = await SelectOnSyntheticSeriesAsync("ContinualServeLearnerNotReady", "continualserve_learner_ready", "instance", ("a", "0"), ("b", "1"));

        selected.ShouldBe(["a"]);
    }

    [Fact]
    public async Task ForgettingAlertSelectsForgettingTask()
    {
        // The alert's expression, evaluated on a synthetic series, proves the threshold and grouping select
        // what they should: 0.4 forgetting on task 1 passes, 0.05 on task 2 does not.
        string?[] selected = await SelectOnSyntheticSeriesAsync("ContinualServeTaskForgetting", "continualserve_task_forgetting", "task", ("1", "0.4"), ("2", "0.05"));

        selected.ShouldBe(["1"]);
    }

    /// <summary>
    /// Evaluates an alert's expression with <paramref name="metric"/> replaced by one constant series per label value,
    /// and returns the <paramref name="label"/> values of the series it selects.
    /// </summary>
    private async Task<string?[]> SelectOnSyntheticSeriesAsync(string alert, string metric, string label, params (string Value, string Sample)[] series)
    {
        MonitoringExpression rule = MonitoringExpressions.AlertRules().Single(candidate => candidate.Source == "alert " + alert);
        string vectors = string.Join(
            " or ", series.Select(one => $"label_replace(vector({one.Sample}), \"{label}\", \"{one.Value}\", \"\", \"\")"));
        string synthetic = rule.Expression.Replace(metric, "(" + vectors + ")", StringComparison.Ordinal);
        JsonElement data = await pipeline.Prometheus.QueryAsync(synthetic, CancellationToken.None);
        return data.GetProperty("result").EnumerateArray().Select(selected => selected.GetProperty("metric").GetProperty(label).GetString()).ToArray();
    }

    [Fact]
    public async Task PromtoolAcceptsBothRulesFiles()
    {
        string crdSpec = Path.Combine(Path.GetTempPath(), "continualserve-prometheusrule-" + Guid.NewGuid().ToString("N") + ".yaml");
        try
        {
            var document = new YamlDocument(new YamlMappingNode { { "groups", MonitoringExpressions.RulesGroups(RepositoryPaths.PrometheusRule, crd: true) } });
            await using (var writer = new StreamWriter(crdSpec))
            {
                new YamlStream(document).Save(writer, assignAnchors: false);
            }

            (int exitCode, string output) = await Promtool.RunAsync("check", "rules", RepositoryPaths.RulesFile, crdSpec);

            exitCode.ShouldBe(0, output);
            output.ShouldContain("SUCCESS: 13 rules found");
        }
        finally
        {
            File.Delete(crdSpec);
        }
    }

    [Fact]
    public void PrometheusRuleMatchesPlainFile()
    {
        var plain = MonitoringExpressions.AlertRules(MonitoringExpressions.RulesGroups(RepositoryPaths.RulesFile, crd: false));
        var crd = MonitoringExpressions.AlertRules(MonitoringExpressions.RulesGroups(RepositoryPaths.PrometheusRule, crd: true));

        crd.ShouldBe(plain);
    }
}
