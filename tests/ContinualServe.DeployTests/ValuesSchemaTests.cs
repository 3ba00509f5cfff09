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
    [InlineData("server", "unknownSetting", "true")]
    public void InvalidValueIsRejected(string section, string key, string json)
    {
        JsonNode values = ChartFiles.ReadYamlAsJson(Path.Combine(ChartFiles.ChartDirectory, "values.yaml")).ShouldNotBeNull();
        values[section]![key] = JsonNode.Parse(json);

        IReadOnlyList<string> errors = Validate(values);

        errors.ShouldNotBeEmpty($"{section}.{key}: {json} must fail the schema");
    }

    [Fact]
    public void MisspelledTopLevelKeyIsRejected()
    {
        JsonNode values = ChartFiles.ReadYamlAsJson(Path.Combine(ChartFiles.ChartDirectory, "values.yaml")).ShouldNotBeNull();
        values["severs"] = new JsonObject();

        Validate(values).ShouldNotBeEmpty();
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
