using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Shouldly;
using Xunit;

namespace ContinualServe.DeployTests;

/// <summary>
/// Every .Values path a template reads exists in values.yaml, so a typo in a template cannot silently render
/// an empty value, which helm renders without an error. This reads the templates as text.
/// </summary>
public sealed partial class TemplateValuesTests
{
    [Fact]
    public void TemplatesReadOnlyDefinedValues()
    {
        JsonNode values = ChartFiles.ReadYamlAsJson(Path.Combine(ChartFiles.ChartDirectory, "values.yaml")).ShouldNotBeNull();
        string[] templates = Directory.GetFiles(ChartFiles.TemplatesDirectory);
        templates.ShouldNotBeEmpty();

        List<string> missing = templates
            .SelectMany(path => MissingReferences(File.ReadAllText(path), values).Select(reference => $"{Path.GetFileName(path)}: {reference}"))
            .ToList();

        missing.ShouldBeEmpty();
    }

    [Fact]
    public void EveryValueIsReadByATemplate()
    {
        // A value that no template reads does nothing, so setting it misleads the operator.
        JsonNode values = ChartFiles.ReadYamlAsJson(Path.Combine(ChartFiles.ChartDirectory, "values.yaml")).ShouldNotBeNull();
        string text = string.Concat(Directory.GetFiles(ChartFiles.TemplatesDirectory).Select(File.ReadAllText));

        UnreadValues(values, text).ShouldBeEmpty();
    }

    [Fact]
    public void UnreadValueIsReported()
    {
        JsonNode values = JsonNode.Parse("""{"tls": {"enabled": false, "secretName": "", "extra": {"a": 1}}, "config": {"b": 2}}""")!;
        const string template = """
            {{- if .Values.tls.enabled }}
            secretName: {{ .Values.tls.secretName }}
            {{- end }}
            {{- toYaml .Values.config }}
            """;

        UnreadValues(values, template).ShouldBe(["tls.extra.a"]);
    }

    [Fact]
    public void TemplatesReferenceValues()
    {
        string text = string.Concat(Directory.GetFiles(ChartFiles.TemplatesDirectory).Select(File.ReadAllText));

        ReferencePattern().Count(text).ShouldBeGreaterThan(50);
    }

    [Theory]
    [InlineData("server-deployment.yaml")]
    [InlineData("learner-deployment.yaml")]
    public void DeploymentRequiresBothTokens(string template)
    {
        // The chart always creates or names both Secrets, so an empty key there is a mistake that must stop the pod.
        string text = File.ReadAllText(Path.Combine(ChartFiles.TemplatesDirectory, template));

        foreach (string setting in new[] { "Management__RequireToken", "Distribution__RequireStoreToken" })
        {
            Regex.IsMatch(text, $@"- name: {setting}\s*\n\s*value: ""true""").ShouldBeTrue($"{template} sets {setting} to true");
        }
    }

    [Theory]
    [InlineData("server-deployment.yaml")]
    [InlineData("learner-deployment.yaml")]
    public void DeploymentMountsTheKafkaClientConfig(string template)
    {
        // Both roles run Kafka clients, so a cluster that needs credentials needs them in both pods.
        string text = File.ReadAllText(Path.Combine(ChartFiles.TemplatesDirectory, template));

        text.ShouldContain("{{- with include \"continualserve.kafkaConfigMount\" . }}");
        text.ShouldContain("{{- with include \"continualserve.kafkaConfigVolume\" . }}");
    }

    [Fact]
    public void KafkaConfigFileInSecretMount()
    {
        string helpers = File.ReadAllText(Path.Combine(ChartFiles.TemplatesDirectory, "_helpers.tpl"));
        string configMap = File.ReadAllText(Path.Combine(ChartFiles.TemplatesDirectory, "configmap.yaml"));

        helpers.ShouldContain("mountPath: {{ include \"continualserve.kafkaConfigDirectory\" . }}");
        configMap.ShouldContain("(printf \"%s/%s\" (include \"continualserve.kafkaConfigDirectory\" .) .Values.kafka.clientConfigSecretKey)");
    }

    [Fact]
    public void MisspelledReferenceIsReported()
    {
        JsonNode values = JsonNode.Parse("""{"server": {"service": {"port": 80}}, "image": {"tag": ""}}""")!;
        const string template = """
            port: {{ .Values.server.service.port }}
            tag: {{ $.Values.image.tag }}
            type: {{ .Values.server.servce.type }}
            """;

        MissingReferences(template, values).ShouldBe(["server.servce.type"]);
    }

    private static IEnumerable<string> MissingReferences(string template, JsonNode values) =>
        ReferencePattern().Matches(template)
            .Select(match => match.Groups["path"].Value)
            .Distinct()
            .Where(path => !Exists(values, path.Split('.')));

    // Leaf paths of values that no reference reads, neither the leaf itself nor a map above it (toYaml .Values.config).
    private static List<string> UnreadValues(JsonNode values, string templates)
    {
        HashSet<string> references = ReferencePattern().Matches(templates).Select(match => match.Groups["path"].Value).ToHashSet();

        return LeafPaths(values, [])
            .Where(keys => !Enumerable.Range(1, keys.Count).Any(length => references.Contains(string.Join('.', keys.Take(length)))))
            .Select(keys => string.Join('.', keys))
            .ToList();
    }

    // Paths of the scalars, lists and empty maps under node, as key lists because some keys contain dots.
    private static IEnumerable<IReadOnlyList<string>> LeafPaths(JsonNode? node, IReadOnlyList<string> prefix)
    {
        if (node is JsonObject mapping && mapping.Count > 0)
        {
            return mapping.SelectMany(pair => LeafPaths(pair.Value, [.. prefix, pair.Key]));
        }

        return [prefix];
    }

    private static bool Exists(JsonNode values, string[] keys)
    {
        JsonNode? node = values;
        foreach (string key in keys)
        {
            if (node is not JsonObject mapping || !mapping.ContainsKey(key))
            {
                return false;
            }

            node = mapping[key];
        }

        return true;
    }

    [GeneratedRegex(@"\.Values\.(?<path>[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)")]
    private static partial Regex ReferencePattern();
}
