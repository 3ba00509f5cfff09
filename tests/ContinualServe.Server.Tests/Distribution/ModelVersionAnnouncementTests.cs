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
        HighestSavedVersion = 9,
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
    [InlineData("{\"modelName\":\"m\",\"version\":300,\"weightsSha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"highestSavedVersion\":-1}", "highestSavedVersion is negative")]
    [InlineData("{\"version\":300,\"weightsSha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "modelName is missing")]
    public void InvalidRecordIsRejected(string value, string reason)
    {
        ModelVersionAnnouncement? parsed = ModelVersionAnnouncement.TryParse(Encoding.UTF8.GetBytes(value), out string error);

        parsed.ShouldBeNull();
        error.ShouldContain(reason);
    }

    [Theory]
    [InlineData("weightsBytes", "1e19")]
    [InlineData("weightsBytes", "18446744073709551616")]
    [InlineData("WeightsBytes", "-1e30")]
    [InlineData("version", "9223372036854775808")]
    public void IntegerBeyondRangeIsNamed(string field, string number)
    {
        string value = $"{{\"modelName\":\"m\",\"version\":3,\"weightsSha256\":\"{new string('a', 64)}\",\"{field}\":{number}}}";

        ModelVersionAnnouncement? parsed = ModelVersionAnnouncement.TryParse(Encoding.UTF8.GetBytes(value), out string error);

        parsed.ShouldBeNull();
        error.ShouldBe($"{char.ToLowerInvariant(field[0])}{field[1..]} is {number}, outside the 64-bit integer range (-9223372036854775808 to 9223372036854775807)");
    }

    [Theory]
    [InlineData("\"weightsBytes\":\"many\"")]
    [InlineData("\"weightsBytes\":1.5")]
    [InlineData("\"createdAt\":1e19")]
    public void WrongFieldTypeIsNotCalledInvalidJson(string field)
    {
        string value = $"{{\"modelName\":\"m\",\"version\":3,\"weightsSha256\":\"{new string('a', 64)}\",{field}}}";

        ModelVersionAnnouncement? parsed = ModelVersionAnnouncement.TryParse(Encoding.UTF8.GetBytes(value), out string error);

        parsed.ShouldBeNull();
        error.ShouldStartWith("the value is JSON, but a field has the wrong type: ");
        error.ShouldNotContain("not valid JSON");
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
