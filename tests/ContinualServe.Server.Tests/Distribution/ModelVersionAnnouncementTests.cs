using System.Text;
using ContinualServe.Learner.Publishing;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Distribution;

public sealed class ModelVersionAnnouncementTests
{
    private static readonly ModelVersionAnnouncement Valid = new()
    {
        ModelName = "fashion-mnist",
        Version = 7,
        WeightsSha256 = new string('a', 64),
        WeightsBytes = 1024,
        CreatedAt = DateTimeOffset.UnixEpoch,
        StoreUrl = "http://learner:8081",
    };

    [Fact]
    public void JsonRoundTripKeepsEveryField()
    {
        ModelVersionAnnouncement? parsed = ModelVersionAnnouncement.TryParse(Valid.ToJsonBytes(), out string error);

        error.ShouldBeEmpty();
        parsed.ShouldBe(Valid);
    }

    [Theory]
    [InlineData("", "no value")]
    [InlineData("{not json", "not valid JSON")]
    [InlineData("{\"version\":0,\"weightsSha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "version")]
    [InlineData("{\"version\":3,\"weightsSha256\":\"ABC\"}", "weightsSha256")]
    [InlineData("{\"version\":3,\"weightsSha256\":null}", "weightsSha256 is missing")]
    [InlineData("{\"version\":3}", "weightsSha256 is missing")]
    [InlineData("{\"version\":3,\"weightsSha256\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}", "weightsSha256")]
    [InlineData("{\"modelName\":\"m\",\"version\":300,\"weightsSha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"weightsBytes\":-5}", "weightsBytes is negative")]
    [InlineData("{\"modelName\":\"m\",\"version\":300,\"weightsSha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"storeUrl\":\"file:///etc/passwd\"}", "storeUrl 'file:///etc/passwd'")]
    [InlineData("{\"modelName\":\"m\",\"version\":300,\"weightsSha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"storeUrl\":\"learner:8081\"}", "storeUrl")]
    [InlineData("{\"modelName\":\"m\",\"version\":300,\"weightsSha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"storeUrl\":\"/models\"}", "storeUrl")]
    [InlineData("{\"modelName\":\"m\",\"version\":300,\"weightsSha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"storeUrl\":\"http://user:secret@127.0.0.1:8081\"}", "storeUrl contains a user name or password")]
    [InlineData("{\"version\":300,\"weightsSha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "modelName is missing")]
    public void InvalidRecordIsRejected(string value, string reason)
    {
        ModelVersionAnnouncement? parsed = ModelVersionAnnouncement.TryParse(Encoding.UTF8.GetBytes(value), out string error);

        parsed.ShouldBeNull();
        error.ShouldContain(reason);
    }

    [Theory]
    [InlineData("")]
    [InlineData("http://learner:8081")]
    [InlineData("https://learner.example:8443/store/")]
    public void EmptyOrHttpStoreUrlIsAccepted(string storeUrl)
    {
        ModelVersionAnnouncement announcement = Valid with { StoreUrl = storeUrl, WeightsBytes = 0 };

        ModelVersionAnnouncement? parsed = ModelVersionAnnouncement.TryParse(announcement.ToJsonBytes(), out string error);

        error.ShouldBeEmpty();
        parsed.ShouldBe(announcement);
    }
}
