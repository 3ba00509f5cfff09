using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Shouldly;
using Xunit;

namespace ContinualServe.DeployTests;

/// <summary>values.yaml against values.schema.json, the schema helm install and helm lint apply.</summary>
public sealed class ValuesSchemaTests
{
    private static readonly JsonSchema Schema =
        JsonSchema.FromText(File.ReadAllText(Path.Combine(ChartFiles.ChartDirectory, "values.schema.json")));

    [Fact]
    public void DefaultValuesMatchSchema()
    {
        JsonNode values = ChartFiles.ReadYamlAsJson(Path.Combine(ChartFiles.ChartDirectory, "values.yaml")).ShouldNotBeNull();

        IReadOnlyList<string> errors = Validate(values);

        errors.ShouldBeEmpty();
    }

    [Theory]
    [InlineData("server", "device", "\"gpu\"")]
    [InlineData("server", "containerPort", "0")]
    [InlineData("learner", "replayStrategy", "\"Fancy\"")]
    [InlineData("kafka", "bootstrapServers", "\"\"")]
    [InlineData("server", "retryDelay", "\"1s\"")]
    [InlineData("server", "minDownloadBytesPerSecond", "-1")]
    [InlineData("server", "minDownloadBytesPerSecond", "\"64Ki\"")]
    [InlineData("server", "unknownSetting", "true")]
    [InlineData("tls", "enabled", "\"true\"")]
    [InlineData("tls", "secretName", "\"Continualserve_TLS\"")]
    [InlineData("tls", "caSecretName", "\"-ca\"")]
    [InlineData("tls", "caSecretKey", "\"ca/crt\"")]
    [InlineData("tls", "caSecretKey", "\"\"")]
    [InlineData("tls", "serviceMonitorTlsConfig", "{\"insecureSkipVerify\": \"true\"}")]
    [InlineData("tls", "serviceMonitorTlsConfig", "[]")]
    [InlineData("tls", "secretname", "\"continualserve-tls\"")]
    public void InvalidValueIsRejected(string section, string key, string json)
    {
        JsonNode values = ChartFiles.ReadYamlAsJson(Path.Combine(ChartFiles.ChartDirectory, "values.yaml")).ShouldNotBeNull();
        values[section]![key] = JsonNode.Parse(json);

        IReadOnlyList<string> errors = Validate(values);

        errors.ShouldNotBeEmpty($"{section}.{key}: {json} must fail the schema");
    }

    [Theory]
    [InlineData("\"\"")]
    [InlineData(null)]
    public void TlsWithoutSecretNameIsRejected(string? secretName)
    {
        JsonNode values = DefaultValues();
        JsonObject tls = values["tls"].ShouldBeOfType<JsonObject>();
        tls["enabled"] = true;
        tls.Remove("secretName");
        if (secretName is not null)
        {
            tls["secretName"] = JsonNode.Parse(secretName);
        }

        Validate(values).ShouldNotBeEmpty("tls.enabled without tls.secretName must fail the schema");
    }

    [Fact]
    public void TlsWithSecretsIsAccepted()
    {
        JsonNode values = DefaultValues();
        values["tls"] = JsonNode.Parse("""
            {
              "enabled": true,
              "secretName": "continualserve-tls",
              "caSecretName": "continualserve-tls",
              "caSecretKey": "ca.crt",
              "serviceMonitorTlsConfig": {
                "serverName": "continualserve-learner.continualserve.svc",
                "ca": {"secret": {"name": "continualserve-tls", "key": "ca.crt"}}
              }
            }
            """);

        Validate(values).ShouldBeEmpty();
    }

    [Fact]
    public void CiValuesFilesMatchSchema()
    {
        // helm lint --values and chart-testing render the chart with each ci/*-values.yaml over values.yaml.
        string[] files = Directory.GetFiles(Path.Combine(ChartFiles.ChartDirectory, "ci"), "*-values.yaml");
        files.ShouldNotBeEmpty();

        foreach (string file in files)
        {
            JsonNode overrides = ChartFiles.ReadYamlAsJson(file).ShouldNotBeNull();
            JsonNode values = MergeOver(DefaultValues(), overrides);

            Validate(values).ShouldBeEmpty(Path.GetFileName(file));
        }
    }

    [Fact]
    public void TlsCiValuesTurnTlsOn()
    {
        JsonNode overrides = ChartFiles.ReadYamlAsJson(Path.Combine(ChartFiles.ChartDirectory, "ci", "tls-values.yaml")).ShouldNotBeNull();

        overrides["tls"]?["enabled"]?.GetValue<bool>().ShouldBe(true);
        overrides["tls"]?["caSecretName"]?.GetValue<string>().ShouldNotBeNullOrEmpty();
        overrides["metrics"]?["serviceMonitor"]?["enabled"]?.GetValue<bool>().ShouldBe(true);
    }

    [Fact]
    public void MergeOverReplacesLeavesOnly()
    {
        JsonNode merged = MergeOver(
            JsonNode.Parse("""{"tls": {"enabled": false, "caSecretKey": "ca.crt"}, "list": [1, 2]}""")!,
            JsonNode.Parse("""{"tls": {"enabled": true}, "list": [3]}""")!);

        merged.ToJsonString().ShouldBe("""{"tls":{"enabled":true,"caSecretKey":"ca.crt"},"list":[3]}""");
    }

    [Fact]
    public void MisspelledTopLevelKeyIsRejected()
    {
        JsonNode values = ChartFiles.ReadYamlAsJson(Path.Combine(ChartFiles.ChartDirectory, "values.yaml")).ShouldNotBeNull();
        values["severs"] = new JsonObject();

        Validate(values).ShouldNotBeEmpty();
    }

    private static JsonNode DefaultValues() =>
        ChartFiles.ReadYamlAsJson(Path.Combine(ChartFiles.ChartDirectory, "values.yaml")).ShouldNotBeNull();

    // Merges overrides into values the way helm merges a --values file: maps key by key, other values replaced whole.
    private static JsonNode MergeOver(JsonNode values, JsonNode overrides)
    {
        if (values is not JsonObject target || overrides is not JsonObject source)
        {
            return overrides.DeepClone();
        }

        foreach ((string key, JsonNode? value) in source)
        {
            target[key] = target[key] is JsonNode existing && value is not null ? MergeOver(existing.DeepClone(), value) : value?.DeepClone();
        }

        return target;
    }

    private static List<string> Validate(JsonNode values)
    {
        using JsonDocument document = JsonDocument.Parse(values.ToJsonString());
        EvaluationResults results = Schema.Evaluate(document.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
        if (results.IsValid)
        {
            return [];
        }

        return (results.Details ?? [])
            .Where(detail => detail.Errors is not null)
            .SelectMany(detail => detail.Errors!.Select(error => $"{detail.InstanceLocation}: {error.Key}: {error.Value}"))
            .DefaultIfEmpty("invalid")
            .ToList();
    }
}
