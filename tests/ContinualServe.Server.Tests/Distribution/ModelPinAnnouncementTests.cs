using System.Text;
using ContinualServe.Learner.Publishing;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Distribution;

public sealed class ModelPinAnnouncementTests
{
    private static readonly ModelVersionAnnouncement PinnedVersion = new()
    {
        ModelName = "fashion-mnist",
        Version = 3,
        WeightsSha256 = new string('b', 64),
        WeightsBytes = 2048,
        CreatedAt = DateTimeOffset.UnixEpoch,
        StoreUrl = "http://learner:8081",
    };

    [Fact]
    public void PinRoundTripKeepsPinnedVersion()
    {
        var pin = new ModelPinAnnouncement { ModelName = "fashion-mnist", Pinned = PinnedVersion, ChangedAt = DateTimeOffset.UnixEpoch };

        ModelPinAnnouncement? parsed = ModelPinAnnouncement.TryParse(pin.ToJsonBytes(), out string error);

        error.ShouldBeEmpty();
        parsed.ShouldNotBeNull();
        parsed.Pinned.ShouldBe(PinnedVersion);
        parsed.ChangedAt.ShouldBe(DateTimeOffset.UnixEpoch);
    }

    [Fact]
    public void UnpinRoundTripHasNoVersion()
    {
        var unpin = new ModelPinAnnouncement { ModelName = "fashion-mnist", Pinned = null };

        ModelPinAnnouncement? parsed = ModelPinAnnouncement.TryParse(unpin.ToJsonBytes(), out string error);

        error.ShouldBeEmpty();
        parsed.ShouldNotBeNull();
        parsed.ModelName.ShouldBe("fashion-mnist");
        parsed.Pinned.ShouldBeNull();
    }

    [Theory]
    [InlineData("fashion-mnist/pin", true)]
    [InlineData("fashion-mnist", false)]
    [InlineData("pin", false)]
    [InlineData(null, false)]
    public void PinKeyIsRecognized(string? key, bool expected) =>
        ModelPinAnnouncement.IsPinKey(key).ShouldBe(expected);

    [Theory]
    [InlineData("", "no value")]
    [InlineData("{not json", "not valid JSON")]
    [InlineData("null", "modelName")]
    [InlineData("{\"pinned\":null}", "modelName")]
    [InlineData("{\"modelName\":\"m\",\"pinned\":{\"modelName\":\"m\",\"version\":0,\"weightsSha256\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}}", "pinned: version")]
    [InlineData("{\"modelName\":\"m\",\"pinned\":{\"modelName\":\"m\",\"version\":2,\"weightsSha256\":\"xyz\"}}", "pinned: weightsSha256")]
    [InlineData("{\"modelName\":\"m\",\"pinned\":{\"modelName\":\"m\",\"version\":2,\"weightsSha256\":null}}", "pinned: weightsSha256 is missing")]
    [InlineData("{\"modelName\":\"m\",\"pinned\":{\"modelName\":\"other\",\"version\":2,\"weightsSha256\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}}", "differs")]
    [InlineData("{\"modelName\":\"m\",\"pinned\":{\"modelName\":\"m\",\"version\":2,\"weightsSha256\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",\"weightsBytes\":-1}}", "pinned: weightsBytes is negative")]
    [InlineData("{\"modelName\":\"m\",\"pinned\":{\"modelName\":\"m\",\"version\":2,\"weightsSha256\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",\"storeUrl\":\"file:///etc/passwd\"}}", "pinned: storeUrl")]
    [InlineData("{\"modelName\":\"m\",\"pinned\":{\"version\":2,\"weightsSha256\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}}", "pinned: modelName is missing")]
    public void InvalidPinRecordIsRejected(string value, string reason)
    {
        ModelPinAnnouncement? parsed = ModelPinAnnouncement.TryParse(Encoding.UTF8.GetBytes(value), out string error);

        parsed.ShouldBeNull();
        error.ShouldContain(reason);
    }
}
