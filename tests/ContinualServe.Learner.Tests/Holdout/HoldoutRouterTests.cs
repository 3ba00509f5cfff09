using ContinualServe.Learner.Holdout;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Holdout;

public sealed class HoldoutRouterTests
{
    private static readonly string[] SliceIds =
        Enumerable.Range(0, TestData.TrainingCount).Select(index => TestData.ExampleId("train", index)).ToArray();

    [Fact]
    public void RouterIsDeterministic()
    {
        var first = new HoldoutRouter(0.1);
        var second = new HoldoutRouter(0.1);

        foreach (string id in SliceIds)
        {
            second.IsHoldout(id).ShouldBe(first.IsHoldout(id), $"instances disagree on {id}");
        }
    }

    [Fact]
    public void RouterRepeatsSameAnswer()
    {
        var router = new HoldoutRouter(0.1);
        bool[] firstPass = SliceIds.Select(router.IsHoldout).ToArray();
        bool[] secondPass = SliceIds.Select(router.IsHoldout).ToArray();

        secondPass.ShouldBe(firstPass);
    }

    [Fact]
    public void RouterHoldsOutTenPercent()
    {
        var router = new HoldoutRouter(0.1);

        double fraction = (double)SliceIds.Count(router.IsHoldout) / SliceIds.Length;

        fraction.ShouldBeInRange(0.08, 0.12);
    }

    [Fact]
    public void DifferentPrefixesRouteDifferently()
    {
        var router = new HoldoutRouter(0.1);
        string[] testIds = Enumerable.Range(0, TestData.TrainingCount).Select(index => TestData.ExampleId("t10k", index)).ToArray();

        bool[] trainAnswers = SliceIds.Select(router.IsHoldout).ToArray();
        bool[] testAnswers = testIds.Select(router.IsHoldout).ToArray();

        trainAnswers.ShouldNotBe(testAnswers);
    }

    [Fact]
    public void RoutingMatchesPinnedIds()
    {
        // Indices computed independently from bytes 0 to 7 of SHA-256 (little-endian) modulo 10,000 below 1,000.
        // Learner checkpoints store holdout examples chosen by this routing, so it must not change.
        int[] expected = [2, 3, 5, 24, 34, 37, 38, 40, 44, 69, 86, 89, 98, 99, 129, 139, 150, 151, 177, 197];
        var router = new HoldoutRouter(0.1);

        int[] heldOut = Enumerable.Range(0, 200).Where(index => router.IsHoldout(TestData.ExampleId("train", index))).ToArray();

        heldOut.ShouldBe(expected);
    }

    [Fact]
    public void ZeroFractionHoldsOutNothing()
    {
        var router = new HoldoutRouter(0);

        SliceIds.Count(router.IsHoldout).ShouldBe(0);
    }

    [Fact]
    public void LargerFractionIsSuperset()
    {
        var small = new HoldoutRouter(0.1);
        var large = new HoldoutRouter(0.3);

        foreach (string id in SliceIds.Where(small.IsHoldout))
        {
            large.IsHoldout(id).ShouldBeTrue($"{id} is held out at 0.1 but not at 0.3");
        }
    }

    [Theory]
    [InlineData(-0.01)]
    [InlineData(1.0)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void InvalidFractionThrows(double fraction)
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new HoldoutRouter(fraction));
    }

    [Fact]
    public void NullIdThrows()
    {
        Should.Throw<ArgumentNullException>(() => new HoldoutRouter(0.1).IsHoldout(null!));
    }
}
