using System.Text.Json.Nodes;
using Shouldly;
using Xunit;

namespace ContinualServe.DeployTests;

/// <summary>
/// Port names, numbers and appProtocol of the rendered Deployments, Services and ServiceMonitor, with and without
/// tls.enabled. The port name must not change with the scheme, because NetworkPolicies and ServiceMonitors outside
/// the chart name it.
/// </summary>
public sealed class ServicePortTests
{
    private const string PortName = "api";

    private static readonly string TlsValues = Path.Combine(ChartFiles.ChartDirectory, "ci", "tls-values.yaml");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PortNameIgnoresTls(bool tls)
    {
        IReadOnlyList<JsonObject> manifests = Render(tls, "--set", "metrics.serviceMonitor.enabled=true");

        foreach (JsonObject deployment in OfKind(manifests, "Deployment"))
        {
            JsonNode container = deployment["spec"]!["template"]!["spec"]!["containers"]![0]!;
            string where = Name(deployment);
            Items(container["ports"]).Select(port => Text(port["name"])).ShouldBe([PortName], where);
            Text(container["livenessProbe"]!["httpGet"]!["port"]).ShouldBe(PortName, where);
            Text(container["readinessProbe"]!["httpGet"]!["port"]).ShouldBe(PortName, where);
        }

        foreach (JsonObject service in OfKind(manifests, "Service"))
        {
            JsonNode port = Items(service["spec"]!["ports"]).ShouldHaveSingleItem(Name(service));
            Text(port["name"]).ShouldBe(PortName, Name(service));
            Text(port["targetPort"]).ShouldBe(PortName, Name(service));
        }

        JsonNode endpoint = Items(OfKind(manifests, "ServiceMonitor").Single()["spec"]!["endpoints"]).Single();
        Text(endpoint["port"]).ShouldBe(PortName);
        Text(endpoint["scheme"]).ShouldBe(tls ? "https" : "http");
    }

    [Theory]
    [InlineData(false, "http")]
    [InlineData(true, "https")]
    public void AppProtocolFollowsTls(bool tls, string expected)
    {
        IReadOnlyList<JsonObject> manifests = Render(tls);

        foreach (JsonObject service in OfKind(manifests, "Service"))
        {
            JsonNode port = Items(service["spec"]!["ports"]).Single();
            Text(port["appProtocol"]).ShouldBe(expected, Name(service));
        }
    }

    [Theory]
    [InlineData(false, 80)]
    [InlineData(true, 443)]
    public void InferencePortDefaultsByScheme(bool tls, int expected)
    {
        IReadOnlyList<JsonObject> manifests = Render(tls);

        InferencePort(manifests).ShouldBe(expected);
    }

    [Theory]
    [InlineData(false, 8080)]
    [InlineData(true, 80)]
    [InlineData(true, 8443)]
    public void ExplicitInferencePortIsKept(bool tls, int port)
    {
        IReadOnlyList<JsonObject> manifests = Render(tls, "--set", $"server.service.port={port}");

        InferencePort(manifests).ShouldBe(port);
    }

    [Fact]
    public void LearnerPortIsContainerPort()
    {
        IReadOnlyList<JsonObject> manifests = Render(true, "--set", "learner.containerPort=9443");
        JsonObject learner = OfKind(manifests, "Service").Single(service => Name(service).EndsWith("-learner", StringComparison.Ordinal));

        Items(learner["spec"]!["ports"]).Single()["port"]!.GetValue<long>().ShouldBe(9443);
    }

    private static IReadOnlyList<JsonObject> Render(bool tls, params string[] options) =>
        Helm.Render(tls ? ["--values", TlsValues, .. options] : options);

    private static long InferencePort(IReadOnlyList<JsonObject> manifests)
    {
        JsonObject service = OfKind(manifests, "Service").Single(candidate => Name(candidate) == $"{Helm.ReleaseName}-continualserve");
        return Items(service["spec"]!["ports"]).Single()["port"]!.GetValue<long>();
    }

    private static IEnumerable<JsonObject> OfKind(IEnumerable<JsonObject> manifests, string kind) =>
        manifests.Where(manifest => Text(manifest["kind"]) == kind);

    private static string Name(JsonObject manifest) => Text(manifest["metadata"]!["name"]);

    private static IEnumerable<JsonNode> Items(JsonNode? array) => array?.AsArray().OfType<JsonNode>() ?? [];

    private static string Text(JsonNode? node) =>
        node?.GetValue<string>() ?? throw new ShouldAssertException("A value that the test reads is missing from the rendered manifest.");
}
