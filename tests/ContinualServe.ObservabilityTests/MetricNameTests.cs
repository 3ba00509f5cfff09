using Shouldly;
using Xunit;

namespace ContinualServe.ObservabilityTests;

/// <summary>Every metric the dashboard and the rules name is one the code exports, compared with a scrape of /metrics.</summary>
[Collection(ObservedPipelineGroup.Name)]
public sealed class MetricNameTests(ObservedPipeline pipeline)
{
    [Fact]
    public async Task DashboardAndRuleMetricsAreExported()
    {
        string scrape = await pipeline.ServerClient.GetStringAsync("metrics");
        var exported = scrape.Split('\n')
            .Where(line => line.StartsWith("continualserve_", StringComparison.Ordinal))
            .Select(line => line[..line.IndexOfAny(['{', ' '])])
            .Concat(MonitoringExpressions.HttpsOnlyMetrics)
            .ToHashSet(StringComparer.Ordinal);
        var expressions = MonitoringExpressions.DashboardPanelTargets()
            .Concat(MonitoringExpressions.DashboardAnnotations())
            .Concat(MonitoringExpressions.DashboardVariableQueries())
            .Concat(MonitoringExpressions.AlertRules())
            .Concat(MonitoringExpressions.AlertRules(MonitoringExpressions.RulesGroups(RepositoryPaths.PrometheusRule, crd: true)))
            .ToArray();

        var named = expressions.SelectMany(expression => MonitoringExpressions.MetricNames(expression.Expression)).ToHashSet(StringComparer.Ordinal);
        var unknown = expressions
            .SelectMany(expression => MonitoringExpressions.MetricNames(expression.Expression)
                .Where(name => !exported.Contains(name))
                .Select(name => $"{expression.Source}: {name}"))
            .ToArray();

        unknown.ShouldBeEmpty();
        // The variable queries match every continualserve_ metric by a regex, so count only literal names.
        named.Count.ShouldBeGreaterThan(15);
        expressions.Where(expression => !expression.Source.StartsWith("variable 'instance'", StringComparison.Ordinal))
            .Where(expression => !MonitoringExpressions.MetricNames(expression.Expression).Any())
            .ShouldBeEmpty();
    }

    [Fact]
    public void MetricNamesFoundInsideFunctions()
    {
        MonitoringExpressions.MetricNames("histogram_quantile(0.99, sum by (le) (rate(continualserve_x_bucket{model=~\"a\"}[5m]))) / continualserve_y")
            .ShouldBe(["continualserve_x_bucket", "continualserve_y"]);
    }
}
