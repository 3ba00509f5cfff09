using ContinualServe.Learner.Replay;
using ContinualServe.Learner.Training;
using ContinualServe.Server.Cli;
using Microsoft.Extensions.Configuration;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

public sealed class StrategyPresetsTests
{
    [Theory]
    [InlineData("derpp", ReplayStrategy.DerPlusPlus)]
    [InlineData("DerPlusPlus", ReplayStrategy.DerPlusPlus)]
    [InlineData("ExperienceReplay", ReplayStrategy.ExperienceReplay)]
    [InlineData("naive", ReplayStrategy.Naive)]
    [InlineData("NAIVE", ReplayStrategy.Naive)]
    public void NamesSelectReplayStrategy(string name, ReplayStrategy expected)
    {
        TrainerOptions trainer = StrategyPresets.Named(name, new TrainerOptions { ReplayCapacity = 300, Seed = 4 });

        trainer.Strategy.ShouldBe(expected);
        trainer.ReplayCapacity.ShouldBe(300);
        trainer.Seed.ShouldBe(4);
    }

    [Fact]
    public void BestKeepsItsCombination()
    {
        TrainerOptions trainer = StrategyPresets.Named("best", new TrainerOptions());

        trainer.Strategy.ShouldBe(ReplayStrategy.DerPlusPlus);
        trainer.AsymmetricNewLoss.ShouldBeTrue();
        trainer.BufferKind.ShouldBe(ReplayBufferKind.ClassBalanced);
        trainer.StepsPerBatch.ShouldBe(3);
        trainer.FeatureLearningRateScale.ShouldBe(0.2);
    }

    [Theory]
    [InlineData("joint")]
    [InlineData("derp")]
    [InlineData("")]
    public void UnknownNameIsRejected(string name)
    {
        StrategyPresets.Find(name).ShouldBeNull();
        Should.Throw<ArgumentException>(() => StrategyPresets.Named(name, new TrainerOptions())).Message.ShouldContain("er-ace");
    }

    [Fact]
    public void BestExpandsBeforeExplicitSettings()
    {
        string[] arguments = ["--Learner:Trainer:StepsPerBatch=5", "--Learner:Trainer:Strategy=best"];

        StrategyPresets.TryExpand(arguments, out string[] expanded, out string? error).ShouldBeTrue();

        error.ShouldBeNull();
        expanded.ShouldBe(
        [
            "--Learner:Trainer:Strategy=DerPlusPlus",
            "--Learner:Trainer:Preset=",
            "--Learner:Trainer:AsymmetricNewLoss=True",
            "--Learner:Trainer:BufferKind=ClassBalanced",
            "--Learner:Trainer:StepsPerBatch=3",
            "--Learner:Trainer:DistillationWeight=0",
            "--Learner:Trainer:FeatureLearningRateScale=0.2",
            "--Learner:Trainer:StepsPerBatch=5",
        ]);
    }

    [Theory]
    [InlineData("DerPlusPlus")]
    [InlineData("experiencereplay")]
    public void SettingNameSetsOnlyStrategy(string name)
    {
        StrategyPresets.TryExpand(["--Learner:Trainer:Strategy=" + name], out string[] expanded, out _).ShouldBeTrue();

        expanded.Length.ShouldBe(2);
        expanded[0].ShouldStartWith("--Learner:Trainer:Strategy=");
        expanded[1].ShouldBe("--Learner:Trainer:Preset=");
    }

    // A preset from the environment (Learner__Trainer__Preset=best) beside --strategy der stopped the start with a
    // message about a Learner:Trainer:Strategy that the user never set, and beside --strategy derpp it was ignored.
    [Theory]
    [InlineData("der", ReplayStrategy.Der, false)]
    [InlineData("derpp", ReplayStrategy.DerPlusPlus, false)]
    [InlineData("best", ReplayStrategy.DerPlusPlus, true)]
    public void StrategyArgumentReplacesConfiguredPreset(string name, ReplayStrategy strategy, bool asymmetric)
    {
        StrategyPresets.TryExpand(["--Learner:Trainer:Strategy=" + name], out string[] expanded, out _).ShouldBeTrue();
        IConfiguration configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Learner:Trainer:Preset"] = "best" })
            .AddCommandLine(expanded)
            .Build();
        TrainerOptions trainer = configuration.GetSection("Learner:Trainer").Get<TrainerOptions>()!;

        StrategyPresets.ApplyPreset(trainer, configuration.GetSection("Learner:Trainer"));

        trainer.Preset.ShouldBeNullOrEmpty();
        trainer.Strategy.ShouldBe(strategy);
        trainer.AsymmetricNewLoss.ShouldBe(asymmetric);
    }

    [Fact]
    public void ExperimentNameSetsWholeCombination()
    {
        StrategyPresets.TryExpand(["--Learner:Trainer:Strategy=derpp"], out string[] expanded, out _).ShouldBeTrue();

        expanded.ShouldBe(
        [
            "--Learner:Trainer:Strategy=DerPlusPlus",
            "--Learner:Trainer:Preset=",
            "--Learner:Trainer:AsymmetricNewLoss=False",
            "--Learner:Trainer:BufferKind=Reservoir",
            "--Learner:Trainer:StepsPerBatch=1",
            "--Learner:Trainer:DistillationWeight=0",
            "--Learner:Trainer:FeatureLearningRateScale=1",
        ]);
    }

    [Fact]
    public void SeparatedValueIsExpanded()
    {
        StrategyPresets.TryExpand(["--Learner:Trainer:Strategy", "er-ace", "--Learner:Trainer:Seed", "7"], out string[] expanded, out _).ShouldBeTrue();

        expanded.ShouldBe(
        [
            "--Learner:Trainer:Strategy=ExperienceReplay",
            "--Learner:Trainer:Preset=",
            "--Learner:Trainer:AsymmetricNewLoss=True",
            "--Learner:Trainer:BufferKind=Reservoir",
            "--Learner:Trainer:StepsPerBatch=1",
            "--Learner:Trainer:DistillationWeight=0",
            "--Learner:Trainer:FeatureLearningRateScale=1",
            "--Learner:Trainer:Seed",
            "7",
        ]);
    }

    [Fact]
    public void LwfSetsDistillationWeight()
    {
        StrategyPresets.TryExpand(["--Learner:Trainer:Strategy=lwf"], out string[] expanded, out _).ShouldBeTrue();

        expanded.ShouldContain("--Learner:Trainer:Strategy=Naive");
        expanded.ShouldContain("--Learner:Trainer:DistillationWeight=1");
    }

    [Fact]
    public void AnalyticSetsModelWidth()
    {
        StrategyPresets.TryExpand(["--Learner:Trainer:Strategy=analytic"], out string[] expanded, out _).ShouldBeTrue();

        expanded.ShouldContain("--Learner:Trainer:Strategy=Analytic");
        expanded.ShouldContain("--Learner:InitialSpec:HiddenSizes:0=1024");
        expanded.Count(argument => argument.Contains("HiddenSizes", StringComparison.Ordinal)).ShouldBe(1);
    }

    [Fact]
    public void ConfiguredWidthOverridesAnalyticWidth()
    {
        string[] arguments = ["--Learner:Trainer:Strategy=analytic", "--Learner:InitialSpec:HiddenSizes:0=2048"];

        StrategyPresets.TryExpand(arguments, out string[] expanded, out _).ShouldBeTrue();

        expanded.Where(argument => argument.Contains("HiddenSizes", StringComparison.Ordinal)).ShouldBe(["--Learner:InitialSpec:HiddenSizes:0=2048"]);
    }

    [Fact]
    public void UnknownStrategyArgumentFails()
    {
        StrategyPresets.TryExpand(["--Learner:Trainer:Strategy=joint"], out _, out string? error).ShouldBeFalse();

        error.ShouldNotBeNull().ShouldContain("Unknown strategy 'joint'");
    }

    [Fact]
    public void ArgumentsWithoutStrategyPassThrough()
    {
        string[] arguments = ["--Learner:Trainer:Seed=7", "--urls=http://127.0.0.1:0"];

        StrategyPresets.TryExpand(arguments, out string[] expanded, out _).ShouldBeTrue();

        expanded.ShouldBe(arguments);
    }
}
