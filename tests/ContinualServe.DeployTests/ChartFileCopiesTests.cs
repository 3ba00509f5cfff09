using System.Text.Json;
using System.Text.Json.Nodes;
using Shouldly;
using Xunit;

namespace ContinualServe.DeployTests;

/// <summary>
/// Helm reads only files inside the chart, so the chart carries copies of the Grafana dashboard and the
/// Prometheus rules. These tests fail when a copy drifts from its original; scripts/sync-chart-files.sh
/// refreshes the copies.
/// </summary>
public sealed class ChartFileCopiesTests
{
    private const string DashboardOriginal = "deploy/grafana/continualserve-dashboard.json";
    private const string RulesOriginal = "deploy/prometheus/continualserve-rules.yaml";

    [OriginalFileFact(DashboardOriginal)]
    public void DashboardCopyEqualsOriginal() => AssertSameBytes(DashboardOriginal, "continualserve-dashboard.json");

    [OriginalFileFact(RulesOriginal)]
    public void RulesCopyEqualsOriginal() => AssertSameBytes(RulesOriginal, "continualserve-rules.yaml");

    [Fact]
    public void DashboardCopyIsGrafanaJson()
    {
        JsonNode dashboard = JsonNode.Parse(File.ReadAllText(CopyPath("continualserve-dashboard.json"))).ShouldNotBeNull();

        dashboard["title"].ShouldNotBeNull();
        dashboard["panels"].ShouldBeOfType<JsonArray>().ShouldNotBeEmpty();
    }

    [Fact]
    public void DashboardPanelIdsAreUnique()
    {
        // Grafana's panel links (viewPanel, editPanel) name a panel by id, so of two panels with one id only one can be opened.
        JsonNode dashboard = JsonNode.Parse(File.ReadAllText(CopyPath("continualserve-dashboard.json"))).ShouldNotBeNull();
        List<int> ids = [];
        CollectPanelIds(dashboard["panels"].ShouldBeOfType<JsonArray>(), ids);

        ids.GroupBy(id => id).Where(group => group.Count() > 1).Select(group => group.Key).ShouldBeEmpty();
    }

    [Fact]
    public void RulesCopyHasRuleGroups()
    {
        // The PrometheusRule template uses the file's top-level "groups" list as its spec.
        JsonNode rules = ChartFiles.ReadYamlAsJson(CopyPath("continualserve-rules.yaml")).ShouldNotBeNull();

        rules.AsObject().Select(pair => pair.Key).ShouldBe(["groups"]);
        rules["groups"].ShouldBeOfType<JsonArray>().ShouldNotBeEmpty();
    }

    // Rows that are collapsed keep their panels in a nested "panels" list.
    private static void CollectPanelIds(JsonArray panels, List<int> ids)
    {
        foreach (JsonNode? panel in panels)
        {
            ids.Add(panel.ShouldNotBeNull()["id"].ShouldNotBeNull().GetValue<int>());
            if (panel["panels"] is JsonArray nested)
            {
                CollectPanelIds(nested, ids);
            }
        }
    }

    private static string CopyPath(string name) => Path.Combine(ChartFiles.ChartDirectory, "files", name);

    private static void AssertSameBytes(string original, string copy)
    {
        byte[] expected = File.ReadAllBytes(Path.Combine(ChartFiles.RepositoryRoot, original));
        byte[] actual = File.ReadAllBytes(CopyPath(copy));

        actual.SequenceEqual(expected).ShouldBeTrue(
            $"deploy/helm/continualserve/files/{copy} differs from {original}; run scripts/sync-chart-files.sh and commit the copy.");
    }
}
