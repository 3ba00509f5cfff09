using ContinualServe.Server.Inference;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Inference;

public sealed class ClientTextTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(ClientText.MaxLength)]
    public void ShortTextIsUnchanged(int length)
    {
        string text = new('a', length);

        ClientText.Truncate(text).ShouldBe(text);
    }

    [Fact]
    public void LongTextKeepsPrefixAndLength()
    {
        string text = new string('a', ClientText.MaxLength) + new string('b', 100_000);

        string truncated = ClientText.Truncate(text);

        truncated.ShouldBe(new string('a', ClientText.MaxLength) + "... (100064 characters)");
    }

    [Fact]
    public void CutKeepsSurrogatePairWhole()
    {
        // U+1F600 is two UTF-16 code units, so a cut after 64 code units would keep only its high surrogate.
        string text = new string('a', ClientText.MaxLength - 1) + "\U0001F600" + new string('b', 10);

        string truncated = ClientText.Truncate(text);

        truncated.ShouldBe(new string('a', ClientText.MaxLength - 1) + "... (75 characters)");
    }
}
