using ContinualServe.Learner;
using ContinualServe.Learner.Replay;
using ContinualServe.Learner.Training;
using ContinualServe.Server.Distribution;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Distribution;

/// <summary>Learner:Trainer:Preset, as appsettings, environment variables and the Helm chart set it.</summary>
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

    private static TrainerOptions Trainer(Dictionary<string, string?> settings)
    {
        settings["Learner:BootstrapServers"] = "127.0.0.1:9092";
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddSingleton(configuration);
        services.AddLogging();
        services.AddLearnerRole();
        using ServiceProvider provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<LearnerOptions>>().Value.Trainer;
    }
}
