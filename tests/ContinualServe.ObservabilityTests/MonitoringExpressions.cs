using System.Text.Json;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace ContinualServe.ObservabilityTests;

/// <summary>A PromQL expression from the dashboard or the rules, with where it came from.</summary>
internal sealed record MonitoringExpression(string Source, string Expression)
{
    public override string ToString() => Source;
}

/// <summary>Reads every PromQL expression out of the Grafana dashboard and the alert rules files.</summary>
internal static partial class MonitoringExpressions
{
    /// <summary>
    /// Metrics exported only by a process that listens with a certificate file, which the observed pipeline does not.
    /// The server test CertificateReloadTests.MetricsExportCertificateExpiry scrapes them from an HTTPS server instead.
    /// </summary>
    public static readonly IReadOnlyList<string> HttpsOnlyMetrics = ["continualserve_https_certificate_expiry_timestamp_seconds"];

    /// <summary>Grafana variables replaced by values Prometheus understands: all models, all instances, a rate window of 15 scrapes.</summary>
    public static string SubstituteGrafanaVariables(string expression) => expression
        .Replace("$__rate_interval", "15s", StringComparison.Ordinal)
        .Replace("$model", ".*", StringComparison.Ordinal)
        .Replace("$instance", ".*", StringComparison.Ordinal);

    public static IReadOnlyList<MonitoringExpression> DashboardPanelTargets()
    {
        using JsonDocument dashboard = JsonDocument.Parse(File.ReadAllText(RepositoryPaths.Dashboard));
        var expressions = new List<MonitoringExpression>();
        foreach (JsonElement panel in dashboard.RootElement.GetProperty("panels").EnumerateArray())
        {
            if (!panel.TryGetProperty("targets", out JsonElement targets))
            {
                continue;
            }

            string title = panel.GetProperty("title").GetString()!;
            foreach (JsonElement target in targets.EnumerateArray())
            {
                expressions.Add(new MonitoringExpression($"panel '{title}' {target.GetProperty("refId").GetString()}", target.GetProperty("expr").GetString()!));
            }
        }

        return expressions;
    }

    public static IReadOnlyList<MonitoringExpression> DashboardAnnotations()
    {
        using JsonDocument dashboard = JsonDocument.Parse(File.ReadAllText(RepositoryPaths.Dashboard));
        return dashboard.RootElement.GetProperty("annotations").GetProperty("list").EnumerateArray()
            .Where(annotation => annotation.TryGetProperty("expr", out _))
            .Select(annotation => new MonitoringExpression($"annotation '{annotation.GetProperty("name").GetString()}'", annotation.GetProperty("expr").GetString()!))
            .ToArray();
    }

    public static IReadOnlyList<MonitoringExpression> DashboardVariableQueries()
    {
        using JsonDocument dashboard = JsonDocument.Parse(File.ReadAllText(RepositoryPaths.Dashboard));
        return dashboard.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray()
            .Where(variable => variable.GetProperty("type").GetString() == "query")
            .Select(variable => new MonitoringExpression($"variable '{variable.GetProperty("name").GetString()}'", variable.GetProperty("definition").GetString()!))
            .ToArray();
    }

    /// <summary>Alert name to expression, from the plain rules file.</summary>
    public static IReadOnlyList<MonitoringExpression> AlertRules() => AlertRules(RulesGroups(RepositoryPaths.RulesFile, crd: false));

    public static YamlSequenceNode RulesGroups(string path, bool crd)
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(path))
        {
            yaml.Load(reader);
        }

        var root = (YamlMappingNode)yaml.Documents[0].RootNode;
        YamlMappingNode holder = crd ? (YamlMappingNode)root["spec"] : root;
        return (YamlSequenceNode)holder["groups"];
    }

    public static IReadOnlyList<MonitoringExpression> AlertRules(YamlSequenceNode groups)
    {
        var rules = new List<MonitoringExpression>();
        foreach (YamlMappingNode group in groups.Children.Cast<YamlMappingNode>())
        {
            foreach (YamlMappingNode rule in ((YamlSequenceNode)group["rules"]).Children.Cast<YamlMappingNode>())
            {
                string name = ((YamlScalarNode)rule["alert"]).Value!;
                string expression = ((YamlScalarNode)rule["expr"]).Value!.Trim();
                rules.Add(new MonitoringExpression("alert " + name, expression));
            }
        }

        return rules;
    }

    /// <summary>Every continualserve_* name in <paramref name="expression"/> (metric names; the project's label names do not use the prefix).</summary>
    public static IEnumerable<string> MetricNames(string expression) =>
        MetricNamePattern().Matches(expression).Select(match => match.Value);

    [GeneratedRegex(@"\bcontinualserve_[a-zA-Z0-9_:]+")]
    private static partial Regex MetricNamePattern();
}
