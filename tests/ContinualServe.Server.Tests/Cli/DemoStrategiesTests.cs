using ContinualServe.Learner.Replay;
using ContinualServe.Learner.Training;
using ContinualServe.Server.Demo;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

public sealed class DemoStrategiesTests
{
    [Theory]
    [InlineData("derpp", ReplayStrategy.DerPlusPlus)]
    [InlineData("DerPlusPlus", ReplayStrategy.DerPlusPlus)]
    [InlineData("ExperienceReplay", ReplayStrategy.ExperienceReplay)]
    [InlineData("naive", ReplayStrategy.Naive)]
    [InlineData("NAIVE", ReplayStrategy.Naive)]
    public void NamesSelectReplayStrategy(string name, ReplayStrategy expected)
    {
        TrainerOptions trainer = DemoStrategies.Named(name, new TrainerOptions { ReplayCapacity = 300, Seed = 4 });

        trainer.Strategy.ShouldBe(expected);
        trainer.ReplayCapacity.ShouldBe(300);
        trainer.Seed.ShouldBe(4);
    }

    [Fact]
    public void BestKeepsItsCombination()
    {
        TrainerOptions trainer = DemoStrategies.Named("best", new TrainerOptions());

        trainer.Strategy.ShouldBe(ReplayStrategy.DerPlusPlus);
        trainer.AsymmetricNewLoss.ShouldBeTrue();
        trainer.BufferKind.ShouldBe(ReplayBufferKind.ClassBalanced);
        trainer.StepsPerBatch.ShouldBe(3);
    }

    [Theory]
    [InlineData("joint")]
    [InlineData("derp")]
    [InlineData("")]
    public void UnknownNameIsRejected(string name)
    {
        DemoStrategies.Find(name).ShouldBeNull();
        Should.Throw<ArgumentException>(() => DemoStrategies.Named(name, new TrainerOptions())).Message.ShouldContain("er-ace");
    }
}
