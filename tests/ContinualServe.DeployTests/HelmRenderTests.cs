using System.Text.Json;
using System.Text.Json.Nodes;
using Shouldly;
using Xunit;

namespace ContinualServe.DeployTests;

/// <summary>
/// The chart as helm lints and renders it. The tests check the manifests of a default install, their fields against
/// the Kubernetes schemas and names that resolve within the release. They also check HTTPS with the tls values, the
/// values schema, and that the rules and the dashboard arrive whole.
/// </summary>
public sealed class HelmRenderTests
{
    private static readonly string TlsValues = Path.Combine(ChartFiles.ChartDirectory, "ci", "tls-values.yaml");

    private static readonly string[] MonitoringOptions =
        ["--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true"];

    private static readonly Dictionary<string, string[]> OptionSets = new()
    {
        ["default"] = [],
        ["tls"] = ["--values", TlsValues],
        ["monitoring"] = MonitoringOptions,
        ["tls and monitoring"] = ["--values", TlsValues, .. MonitoringOptions],
        ["no autoscaling"] = ["--set", "server.autoscaling.enabled=false"],
        ["learner disabled"] = ["--set", "learner.enabled=false"],
        // The settings docs/deploy.md gives for a cluster without a GPU node.
        ["cpu learner"] =
        [
            "--set", "learner.gpu.enabled=false", "--set", "learner.nodeSelector=null",
            "--set", "learner.tolerations=null", "--set", "learner.device=cpu",
        ],
        // Unset resources, as on a cluster where a LimitRange sets them. The learner keeps its GPU limit.
        ["resources unset"] = ["--set", "server.resources=null", "--set", "learner.resources=null"],
    };

    public static TheoryData<string> OptionSetNames => new(OptionSets.Keys);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LintPassesStrict(bool tls)
    {
        string[] arguments = tls
            ? ["lint", "--strict", ChartFiles.ChartDirectory, "--values", TlsValues]
            : ["lint", "--strict", ChartFiles.ChartDirectory];

        (int exitCode, string output) = Helm.Run(arguments);

        exitCode.ShouldBe(0, output);
    }

    [Fact]
    public void DefaultValuesRenderEachManifest()
    {
        string[] manifests = Helm.Render()
            .Select(manifest => $"{Kind(manifest)}/{Name(manifest)}")
            .Order(StringComparer.Ordinal)
            .ToArray();

        manifests.ShouldBe(
        [
            "ConfigMap/cs-continualserve",
            "ConfigMap/cs-continualserve-dashboard",
            "Deployment/cs-continualserve-learner",
            "Deployment/cs-continualserve-server",
            "HorizontalPodAutoscaler/cs-continualserve-server",
            "PersistentVolumeClaim/cs-continualserve-models",
            "PodDisruptionBudget/cs-continualserve-server",
            "Secret/cs-continualserve-management",
            "Secret/cs-continualserve-store",
            "Service/cs-continualserve",
            "Service/cs-continualserve-learner",
            "ServiceAccount/cs-continualserve",
        ]);
    }

    [Theory]
    [MemberData(nameof(OptionSetNames))]
    public void PodReferencesResolveWithinRelease(string optionSet)
    {
        IReadOnlyList<JsonObject> manifests = Helm.Render(OptionSets[optionSet]);
        string[] configMaps = Names(manifests, "ConfigMap");
        string[] claims = Names(manifests, "PersistentVolumeClaim");
        string[] accounts = Names(manifests, "ServiceAccount");

        foreach (JsonObject deployment in OfKind(manifests, "Deployment"))
        {
            string where = $"{optionSet}: Deployment {Name(deployment)}";
            Labels(deployment["spec"]!["selector"]!["matchLabels"]).ShouldBeSubsetOf(PodLabels(deployment), where);
            JsonObject spec = PodSpec(deployment);
            accounts.ShouldContain(Text(spec["serviceAccountName"]), where);

            string[] volumes = Items(spec["volumes"]).Select(volume => Text(volume["name"])).ToArray();
            foreach (JsonNode volume in Items(spec["volumes"]))
            {
                if (volume["configMap"] is JsonNode configMap)
                {
                    configMaps.ShouldContain(Text(configMap["name"]), where);
                }

                if (volume["persistentVolumeClaim"] is JsonNode claim)
                {
                    claims.ShouldContain(Text(claim["claimName"]), where);
                }
            }

            foreach (JsonNode container in Items(spec["containers"]))
            {
                string[] ports = ContainerPortNames(container);
                foreach (JsonNode mount in Items(container["volumeMounts"]))
                {
                    volumes.ShouldContain(Text(mount["name"]), where);
                }

                foreach (string probe in new[] { "livenessProbe", "readinessProbe" })
                {
                    ports.ShouldContain(Text(container[probe]!["httpGet"]!["port"]), $"{where}: {probe}");
                }

                foreach (JsonNode variable in Items(container["env"]))
                {
                    if (variable["valueFrom"]?["secretKeyRef"] is not JsonNode reference)
                    {
                        continue;
                    }

                    string secretName = Text(reference["name"]);
                    string key = Text(reference["key"]);
                    JsonObject secret = OfKind(manifests, "Secret").SingleOrDefault(candidate => Name(candidate) == secretName)
                        ?? throw new ShouldAssertException($"{where}: Secret {secretName} is not rendered");
                    secret["data"]![key].ShouldNotBeNull($"{where}: Secret {secretName} has no key {key}");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(OptionSetNames))]
    public void ServicesReachNamedContainerPorts(string optionSet)
    {
        IReadOnlyList<JsonObject> manifests = Helm.Render(OptionSets[optionSet]);
        JsonObject[] deployments = OfKind(manifests, "Deployment").ToArray();
        JsonObject[] services = OfKind(manifests, "Service").ToArray();

        foreach (JsonObject service in services)
        {
            string where = $"{optionSet}: Service {Name(service)}";
            Dictionary<string, string> selector = Labels(service["spec"]!["selector"]);
            JsonObject deployment = deployments.Single(candidate => selector.IsSubsetOf(PodLabels(candidate)));
            string[] ports = Containers(deployment).SelectMany(ContainerPortNames).ToArray();
            foreach (JsonNode port in Items(service["spec"]!["ports"]))
            {
                ports.ShouldContain(Text(port["targetPort"]), where);
            }
        }

        foreach (JsonObject autoscaler in OfKind(manifests, "HorizontalPodAutoscaler"))
        {
            string target = Text(autoscaler["spec"]!["scaleTargetRef"]!["name"]);
            Names(manifests, "Deployment").ShouldContain(target, $"{optionSet}: {Name(autoscaler)}");
        }

        foreach (JsonObject budget in OfKind(manifests, "PodDisruptionBudget"))
        {
            Dictionary<string, string> selector = Labels(budget["spec"]!["selector"]!["matchLabels"]);
            deployments.Count(candidate => selector.IsSubsetOf(PodLabels(candidate)))
                .ShouldBe(1, $"{optionSet}: PodDisruptionBudget {Name(budget)}");
        }

        foreach (JsonObject monitor in OfKind(manifests, "ServiceMonitor"))
        {
            Dictionary<string, string> selector = Labels(monitor["spec"]!["selector"]!["matchLabels"]);
            JsonObject[] scraped = services.Where(service => selector.IsSubsetOf(Labels(service["metadata"]!["labels"]))).ToArray();
            scraped.Length.ShouldBe(services.Length, $"{optionSet}: the ServiceMonitor scrapes every Service");
            foreach (JsonNode endpoint in Items(monitor["spec"]!["endpoints"]))
            {
                foreach (JsonObject service in scraped)
                {
                    ServicePortNames(service).ShouldContain(Text(endpoint["port"]), $"{optionSet}: Service {Name(service)}");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(OptionSetNames))]
    public void ManifestsMatchKubernetesSchemas(string optionSet)
    {
        IReadOnlyList<JsonObject> manifests = Helm.Render(OptionSets[optionSet]);

        (int exitCode, string output) = KubernetesSchemas.Validate(manifests);

        exitCode.ShouldBe(0, output);
        output.Split('\n').Count(line => line.StartsWith("valid ", StringComparison.Ordinal)).ShouldBe(manifests.Count, output);
    }

    [Fact]
    public void SchemaCheckRejectsWrongFieldType()
    {
        IReadOnlyList<JsonObject> manifests = Helm.Render();
        JsonObject deployment = OfKind(manifests, "Deployment").First();
        deployment["spec"]!["template"]!["spec"]!["containers"]![0]!["readinessProbe"]!["periodSeconds"] = "five";

        (int exitCode, string output) = KubernetesSchemas.Validate(manifests);

        exitCode.ShouldNotBe(0, output);
        output.ShouldContain($"invalid Deployment/{Name(deployment)}", Case.Sensitive);
        output.ShouldContain("periodSeconds", Case.Sensitive);
    }

    [Fact]
    public void TlsValuesServeHttpsEverywhere()
    {
        IReadOnlyList<JsonObject> manifests = Helm.Render(["--values", TlsValues, .. MonitoringOptions]);

        foreach (JsonNode container in OfKind(manifests, "Deployment").SelectMany(Containers))
        {
            string name = Text(container["name"]);
            JsonNode urls = Items(container["env"]).Single(variable => Text(variable["name"]) == "ASPNETCORE_URLS");
            Text(urls["value"]).ShouldStartWith("https://", Case.Sensitive, name);
            ContainerPortNames(container).ShouldBe(["api"], name);
            Text(container["livenessProbe"]!["httpGet"]!["scheme"]).ShouldBe("HTTPS", name);
            Text(container["readinessProbe"]!["httpGet"]!["scheme"]).ShouldBe("HTTPS", name);
        }

        foreach (JsonObject service in OfKind(manifests, "Service"))
        {
            ServicePortNames(service).ShouldBe(["api"], Name(service));
        }

        JsonObject monitor = OfKind(manifests, "ServiceMonitor").Single();
        Text(monitor["spec"]!["endpoints"]![0]!["scheme"]).ShouldBe("https");
        Distribution(manifests)["StoreUrl"]!.GetValue<string>()
            .ShouldBe($"https://{Helm.ReleaseName}-continualserve-learner.{Helm.Namespace}.svc:8081");
    }

    [Fact]
    public void DefaultStoreUrlNamesLearnerService()
    {
        IReadOnlyList<JsonObject> manifests = Helm.Render();

        Distribution(manifests)["StoreUrl"]!.GetValue<string>()
            .ShouldBe($"http://{Helm.ReleaseName}-continualserve-learner.{Helm.Namespace}.svc:8081");
        Names(manifests, "Service").ShouldContain($"{Helm.ReleaseName}-continualserve-learner");
    }

    [Fact]
    public void CpuLearnerRequestsNoGpu()
    {
        IReadOnlyList<JsonObject> manifests = Helm.Render(OptionSets["cpu learner"]);
        JsonObject learner = OfKind(manifests, "Deployment").Single(deployment => Name(deployment).EndsWith("-learner", StringComparison.Ordinal));
        JsonObject pod = PodSpec(learner);

        Containers(learner).Single()["resources"]!["limits"]!.AsObject().ShouldNotContainKey("nvidia.com/gpu");
        pod.ShouldNotContainKey("nodeSelector");
        pod.ShouldNotContainKey("tolerations");
        Settings(manifests)["Learner"]!["Device"]!.GetValue<string>().ShouldBe("cpu");
    }

    // The learner's stop can take 45 s and the process waits 50 s for it, so the default grace period of 30 s would
    // kill it mid-round.
    [Fact]
    public void LearnerPodOutlastsItsLongestStop()
    {
        IReadOnlyList<JsonObject> manifests = Helm.Render();
        JsonObject learner = OfKind(manifests, "Deployment").Single(deployment => Name(deployment).EndsWith("-learner", StringComparison.Ordinal));

        PodSpec(learner)["terminationGracePeriodSeconds"]!.GetValue<long>().ShouldBeGreaterThan(50);
    }

    [Theory]
    [InlineData("server.replicas=-1")]
    [InlineData("learner.replayCapacity=-5")]
    [InlineData("server.device=tpu")]
    public void SchemaRejectsInvalidValue(string setting)
    {
        (int exitCode, string output) = Helm.Run("template", Helm.ReleaseName, ChartFiles.ChartDirectory, "--set", setting);

        exitCode.ShouldNotBe(0, output);
        output.ShouldContain("schema", Case.Insensitive);
    }

    // values.yaml must hold the schema's defaults, which a server test keeps equal to the learner's, and each value
    // must reach its setting.
    [Fact]
    public void GateValuesReachLearnerSettings()
    {
        JsonObject schema = JsonNode.Parse(File.ReadAllText(Path.Combine(ChartFiles.ChartDirectory, "values.schema.json")))!.AsObject();
        JsonObject gate = schema["properties"]!["learner"]!["properties"]!["promotion"]!["properties"]!.AsObject();
        JsonObject rendered = Settings(Helm.Render())["Learner"]!["Promotion"]!.AsObject();
        JsonObject floored = Settings(Helm.Render("--set-json", "learner.promotion.minAverageAccuracy=0.6"))["Learner"]!["Promotion"]!.AsObject();

        foreach ((string key, JsonNode? value) in gate)
        {
            string setting = char.ToUpperInvariant(key[0]) + key[1..];
            JsonNode.DeepEquals(rendered[setting], value!["default"]).ShouldBeTrue(setting);
        }

        rendered.Count.ShouldBe(gate.Count);
        floored["MinAverageAccuracy"]!.GetValue<double>().ShouldBe(0.6);
    }

    [Fact]
    public void PrometheusRuleCarriesEveryAlert()
    {
        JsonObject rule = OfKind(Helm.Render(MonitoringOptions), "PrometheusRule").Single();
        string rulesPath = Path.Combine(ChartFiles.RepositoryRoot, "deploy", "prometheus", "continualserve-rules.yaml");
        JsonNode rules = ChartFiles.ReadYamlAsJson(rulesPath)!;

        Alerts(rule["spec"]!).ShouldBe(Alerts(rules));
        Alerts(rules).ShouldNotBeEmpty();
    }

    [Fact]
    public void DashboardConfigMapCarriesDashboardWhole()
    {
        JsonObject configMap = OfKind(Helm.Render(), "ConfigMap")
            .Single(candidate => Name(candidate).EndsWith("-dashboard", StringComparison.Ordinal));
        string rendered = Text(configMap["data"]!["continualserve-dashboard.json"]);
        string originalPath = Path.Combine(ChartFiles.RepositoryRoot, "deploy", "grafana", "continualserve-dashboard.json");
        string original = File.ReadAllText(originalPath);

        JsonNode.DeepEquals(JsonNode.Parse(rendered), JsonNode.Parse(original)).ShouldBeTrue();
    }

    private static JsonObject Distribution(IReadOnlyList<JsonObject> manifests) => Settings(manifests)["Distribution"]!.AsObject();

    private static JsonObject Settings(IReadOnlyList<JsonObject> manifests)
    {
        const string key = "appsettings.Production.json";
        JsonObject settings = OfKind(manifests, "ConfigMap").Single(candidate => candidate["data"]?[key] is not null);
        return JsonNode.Parse(Text(settings["data"]![key]))!.AsObject();
    }

    private static string[] Alerts(JsonNode rules) => Items(rules["groups"])
        .SelectMany(group => Items(group["rules"]))
        .Select(rule => rule["alert"]?.GetValue<string>())
        .OfType<string>()
        .Order(StringComparer.Ordinal)
        .ToArray();

    private static IEnumerable<JsonObject> OfKind(IEnumerable<JsonObject> manifests, string kind) =>
        manifests.Where(manifest => Kind(manifest) == kind);

    private static string[] Names(IEnumerable<JsonObject> manifests, string kind) => OfKind(manifests, kind).Select(Name).ToArray();

    private static string Kind(JsonObject manifest) => Text(manifest["kind"]);

    private static string Name(JsonObject manifest) => Text(manifest["metadata"]!["name"]);

    private static JsonObject PodSpec(JsonObject deployment) => deployment["spec"]!["template"]!["spec"]!.AsObject();

    private static IEnumerable<JsonNode> Containers(JsonObject deployment) => Items(PodSpec(deployment)["containers"]);

    private static Dictionary<string, string> PodLabels(JsonObject deployment) =>
        Labels(deployment["spec"]!["template"]!["metadata"]!["labels"]);

    private static string[] ContainerPortNames(JsonNode container) =>
        Items(container["ports"]).Select(port => Text(port["name"])).ToArray();

    private static string[] ServicePortNames(JsonObject service) =>
        Items(service["spec"]!["ports"]).Select(port => Text(port["name"])).ToArray();

    private static IEnumerable<JsonNode> Items(JsonNode? array) => array?.AsArray().OfType<JsonNode>() ?? [];

    private static Dictionary<string, string> Labels(JsonNode? labels) =>
        labels?.AsObject().ToDictionary(pair => pair.Key, pair => Text(pair.Value)) ?? [];

    private static string Text(JsonNode? node) => node?.GetValueKind() switch
    {
        JsonValueKind.String => node.GetValue<string>(),
        null => throw new ShouldAssertException("A value that the test reads is missing from the rendered manifest."),
        _ => node.ToJsonString(),
    };
}

internal static class LabelSets
{
    /// <summary>Returns whether <paramref name="selector"/> is not empty and each of its labels is in <paramref name="labels"/>.</summary>
    public static bool IsSubsetOf(this Dictionary<string, string> selector, Dictionary<string, string> labels) =>
        selector.Count > 0
        && selector.All(pair => labels.TryGetValue(pair.Key, out string? value) && value == pair.Value);

    public static void ShouldBeSubsetOf(this Dictionary<string, string> selector, Dictionary<string, string> labels, string where) =>
        selector.IsSubsetOf(labels)
            .ShouldBeTrue($"{where}: selector {string.Join(',', selector)} does not match the pod labels");
}
