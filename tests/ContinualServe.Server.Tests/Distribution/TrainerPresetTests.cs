using System.Text.Json;
using ContinualServe.Learner;
using ContinualServe.Learner.Experiments;
using ContinualServe.Learner.Promotion;
using ContinualServe.Learner.Replay;
using ContinualServe.Learner.Training;
using ContinualServe.Model;
using ContinualServe.Server.Distribution;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>Learner:Trainer:Preset and Learner:InitialSpec, as appsettings, environment variables and the Helm chart set them.</summary>
public sealed class TrainerPresetTests
{
    [Fact]
    public void PresetFillsUnsetSettings()
    {
        TrainerOptions trainer = Trainer(new() { ["Learner:Trainer:Preset"] = "best", ["Learner:Trainer:StepsPerBatch"] = "5" });

        trainer.Strategy.ShouldBe(ReplayStrategy.DerPlusPlus);
        trainer.AsymmetricNewLoss.ShouldBeTrue();
        trainer.BufferKind.ShouldBe(ReplayBufferKind.ClassBalanced);
        trainer.FeatureLearningRateScale.ShouldBe(0.2);
        trainer.StepsPerBatch.ShouldBe(5);
    }

    [Fact]
    public void NoPresetKeepsDefaults()
    {
        TrainerOptions trainer = Trainer([]);

        trainer.AsymmetricNewLoss.ShouldBeFalse();
        trainer.BufferKind.ShouldBe(ReplayBufferKind.Reservoir);
        trainer.FeatureLearningRateScale.ShouldBe(1.0);
    }

    [Fact]
    public void UnknownPresetFailsValidation()
    {
        OptionsValidationException exception = Should.Throw<OptionsValidationException>(() => Trainer(new() { ["Learner:Trainer:Preset"] = "joint" }));

        exception.Message.ShouldContain("Learner:Trainer:Preset: Unknown strategy 'joint'");
    }

    // The Helm chart renders learner.replayStrategy when learner.preset is empty, so a preset set through the chart's
    // config block came with the chart's DerPlusPlus, and analytic's width trained DER++ without any warning.
    [Fact]
    public void PresetWithOtherStrategyFailsValidation()
    {
        OptionsValidationException exception = Should.Throw<OptionsValidationException>(
            () => Trainer(new() { ["Learner:Trainer:Preset"] = "analytic", ["Learner:Trainer:Strategy"] = "DerPlusPlus" }));

        exception.Message.ShouldContain("Learner:Trainer:Preset 'analytic' trains with strategy Analytic");
        exception.Message.ShouldContain("Learner:Trainer:Strategy is DerPlusPlus");
    }

    [Fact]
    public void PresetWithItsOwnStrategyIsAccepted()
    {
        TrainerOptions trainer = Trainer(new() { ["Learner:Trainer:Preset"] = "best", ["Learner:Trainer:Strategy"] = "DerPlusPlus" });

        trainer.AsymmetricNewLoss.ShouldBeTrue();
    }

    // The chart's values.schema.json lists the names that learner.preset and learner.replayStrategy accept, and helm
    // rejects any other, so a strategy missing there cannot be deployed with the chart.
    [Fact]
    public void ChartSchemaListsEveryStrategy()
    {
        using JsonDocument schema = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "deploy", "values.schema.json")));
        JsonElement learner = schema.RootElement.GetProperty("properties").GetProperty("learner").GetProperty("properties");
        string[] Enum(string key) => learner.GetProperty(key).GetProperty("enum").EnumerateArray().Select(item => item.GetString()!).ToArray();

        Enum("replayStrategy").ShouldBe(System.Enum.GetNames<ReplayStrategy>(), ignoreOrder: true);
        Enum("preset").ShouldBe(["", .. ExperimentStrategy.KnownNames.Where(name => name != "joint")], ignoreOrder: true);
    }

    // The chart renders learner.promotion into Learner:Promotion. A deploy test keeps values.yaml equal to the schema's
    // defaults. This test keeps those equal to the learner's own.
    [Fact]
    public void ChartSchemaGateDefaultsMatchCode()
    {
        using JsonDocument schema = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "deploy", "values.schema.json")));
        JsonElement gate = schema.RootElement.GetProperty("properties").GetProperty("learner").GetProperty("properties")
            .GetProperty("promotion").GetProperty("properties");
        double Default(string key) => gate.GetProperty(key).GetProperty("default").GetDouble();
        var defaults = new PromotionOptions();

        gate.GetProperty("enabled").GetProperty("default").GetBoolean().ShouldBe(defaults.Enabled);
        Default("maxForgetting").ShouldBe(defaults.MaxForgetting);
        Default("maxAverageAccuracyDrop").ShouldBe(defaults.MaxAverageAccuracyDrop);
        Default("minAverageAccuracy").ShouldBe(defaults.MinAverageAccuracy);
        Default("minGoldenAccuracy").ShouldBe(defaults.MinGoldenAccuracy);
        gate.EnumerateObject().Count().ShouldBe(5);
    }

    [Fact]
    public void ConfiguredSpecListsReplaceDefaults()
    {
        ModelSpec spec = Learner(new()
        {
            ["Learner:InitialSpec:HiddenSizes:0"] = "1024",
            ["Learner:InitialSpec:Labels:0"] = "cat",
            ["Learner:InitialSpec:Labels:1"] = "dog",
        }).InitialSpec;

        spec.HiddenSizes.ShouldBe([1024]);
        spec.Labels.ShouldBe(["cat", "dog"]);
        spec.InputShape.ShouldBe([784]);
    }

    [Fact]
    public void AnalyticPresetSetsModelWidth()
    {
        LearnerOptions learner = Learner(new() { ["Learner:Trainer:Preset"] = "analytic" });

        learner.Trainer.Strategy.ShouldBe(ReplayStrategy.Analytic);
        learner.InitialSpec.HiddenSizes.ShouldBe([1024]);
    }

    [Fact]
    public void ConfiguredWidthOverridesAnalyticPreset()
    {
        LearnerOptions learner = Learner(new() { ["Learner:Trainer:Preset"] = "analytic", ["Learner:InitialSpec:HiddenSizes:0"] = "512" });

        learner.InitialSpec.HiddenSizes.ShouldBe([512]);
    }

    [Theory]
    [InlineData("Learner:InitialSpec:Architecture", "cnn", "needs the mlp architecture")]
    [InlineData("Learner:InitialSpec:HiddenSizes", "", "needs the mlp architecture with at least one hidden layer")]
    [InlineData("Learner:InitialSpec:HiddenSizes:0", "16385", "at most 16384 units, but it has 16385")]
    [InlineData("Learner:Trainer:DistillationWeight", "1", "Learner:Trainer:DistillationWeight: the analytic strategy fits its head in closed form")]
    public void AnalyticRejectsUnfitSettings(string key, string value, string expected)
    {
        OptionsValidationException exception = Should.Throw<OptionsValidationException>(
            () => Learner(new() { ["Learner:Trainer:Strategy"] = "Analytic", [key] = value }));

        exception.Message.ShouldContain(expected);
    }

    [Fact]
    public void AnalyticPresetWithCnnFailsValidation()
    {
        OptionsValidationException exception = Should.Throw<OptionsValidationException>(
            () => Learner(new() { ["Learner:Trainer:Preset"] = "analytic", ["Learner:InitialSpec:Architecture"] = "cnn" }));

        exception.Message.ShouldContain("Learner:InitialSpec:Architecture");
    }

    [Fact]
    public void AnalyticAcceptsSeveralHiddenLayers()
    {
        LearnerOptions learner = Learner(new()
        {
            ["Learner:Trainer:Strategy"] = "Analytic",
            ["Learner:InitialSpec:HiddenSizes:0"] = "64",
            ["Learner:InitialSpec:HiddenSizes:1"] = "16384",
        });

        learner.InitialSpec.HiddenSizes.ShouldBe([64, 16384]);
    }

    private static TrainerOptions Trainer(Dictionary<string, string?> settings) => Learner(settings).Trainer;

    private static LearnerOptions Learner(Dictionary<string, string?> settings)
    {
        settings["Learner:BootstrapServers"] = "127.0.0.1:9092";
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddSingleton(configuration);
        services.AddLogging();
        services.AddLearnerRole();
        using ServiceProvider provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<LearnerOptions>>().Value;
    }
}
