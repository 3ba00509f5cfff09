using ContinualServe.Learner.Holdout;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Holdout;

public sealed class ExampleIdHashTests
{
    // Bytes 0 to 7 and 8 to 15 of SHA-256 over the UTF-8 id, read little-endian, computed with Python's hashlib.
    [Theory]
    [InlineData("train-00000", 17832360087534637196UL, 4740818114587670603UL)]
    [InlineData("", 1449310910991872227UL, 2646268962349054874UL)]
    [InlineData("é-1", 11753291589199071660UL, 2292149523631313996UL)]
    public void KeysMatchPinnedValues(string exampleId, ulong routingKey, ulong sampleKey)
    {
        ExampleIdHash idHash = ExampleIdHash.Of(exampleId);

        idHash.RoutingKey.ShouldBe(routingKey);
        idHash.SampleKey.ShouldBe(sampleKey);
    }

    [Fact]
    public void RouterAgreesOnIdAndHash()
    {
        var router = new HoldoutRouter(0.1);

        foreach (string id in Enumerable.Range(0, 500).Select(index => TestData.ExampleId("train", index)))
        {
            router.IsHoldout(ExampleIdHash.Of(id)).ShouldBe(router.IsHoldout(id), id);
        }
    }

    [Fact]
    public void NullIdThrows()
    {
        Should.Throw<ArgumentNullException>(() => ExampleIdHash.Of(null!));
    }
}
