using ContinualServe.Learner.Publishing;
using ContinualServe.Server.Distribution;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Distribution;

public sealed class DistributionOptionsTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("http://continualserve-learner:8081")]
    [InlineData("https://models.example.internal/store")]
    public void HttpStoreUrlIsValid(string? storeUrl)
    {
        var options = new DistributionOptions { StoreUrl = storeUrl };

        new DistributionOptionsValidator().Validate(null, options).Succeeded.ShouldBeTrue();
    }

    [Fact]
    public void StoreUrlWithCredentialsIsRejected()
    {
        var options = new DistributionOptions { StoreUrl = "http://user:secret@continualserve-learner:8081" };

        string? failure = new DistributionOptionsValidator().Validate(null, options).FailureMessage;

        failure.ShouldNotBeNull().ShouldContain("Distribution:StoreUrl must not contain a user name or password");
        failure.ShouldNotContain("secret");
    }

    [Theory]
    [InlineData("ftp://x")]
    [InlineData("file:///srv/models")]
    [InlineData("continualserve-learner:8081")]
    public void OtherStoreUrlIsRejected(string storeUrl)
    {
        var options = new DistributionOptions { StoreUrl = storeUrl };

        string? failure = new DistributionOptionsValidator().Validate(null, options).FailureMessage;

        failure.ShouldNotBeNull().ShouldContain("Distribution:StoreUrl must be an absolute http or https URL");
        failure.ShouldContain(storeUrl);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(DistributionOptions.DefaultMinDownloadBytesPerSecond)]
    public void MinDownloadRateAcceptsZeroAndPositive(long bytesPerSecond)
    {
        var options = new DistributionOptions { MinDownloadBytesPerSecond = bytesPerSecond };

        new DistributionOptionsValidator().Validate(null, options).Succeeded.ShouldBeTrue();
    }

    [Fact]
    public void NegativeMinDownloadRateIsRejected()
    {
        var options = new DistributionOptions { MinDownloadBytesPerSecond = -1 };

        string? failure = new DistributionOptionsValidator().Validate(null, options).FailureMessage;

        failure.ShouldNotBeNull().ShouldContain("Distribution:MinDownloadBytesPerSecond must be 0 (no minimum)");
        failure.ShouldContain("it is -1");
    }
}
