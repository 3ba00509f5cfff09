using ContinualServe.Server.Hosting;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Hosting;

public sealed class BearerTokenTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("continualserve-token-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void BlankFileFailsTheStart()
    {
        string tokenFile = Path.Combine(root, "management-token");
        File.WriteAllText(tokenFile, " \n");

        InvalidConfigurationException exception = Should.Throw<InvalidConfigurationException>(
            () => BearerToken.TryLoad(tokenFile, "", "management"));

        exception.Message.ShouldContain($"management token file {tokenFile} is empty");
    }

    [Fact]
    public void BlankVariableMeansNoToken()
    {
        string variable = "CONTINUALSERVE_TEST_TOKEN_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(variable, "  ");
        try
        {
            BearerToken.TryLoad("", variable, "management").ShouldBeNull();
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    [Fact]
    public void LineBreakTokenIsRefused()
    {
        string variable = "CONTINUALSERVE_TEST_TOKEN_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(variable, "first-half-0123456789\r\nsecond-half-0123456789");
        try
        {
            InvalidConfigurationException exception = Should.Throw<InvalidConfigurationException>(
                () => BearerToken.TryLoad("", variable, "management"));

            exception.Message.ShouldContain("environment variable " + variable);
            exception.Message.ShouldContain("outside printable ASCII");
            exception.Message.ShouldNotContain("first-half");
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    [Fact]
    public void DirectoryPathNamesTheMistake()
    {
        // A Kubernetes Secret is mounted as a directory with one file per key, so the setting can name the directory.
        InvalidConfigurationException exception = Should.Throw<InvalidConfigurationException>(
            () => BearerToken.TryLoad(root, "", "management"));

        exception.Message.ShouldContain($"management token file {root} is a directory");
        exception.Message.ShouldNotContain("denied");
    }

    [Fact]
    public void HugeTokenFileIsRejected()
    {
        // A setting that names a large file by mistake must not load it all into memory as a token.
        string tokenFile = Path.Combine(root, "large-file");
        File.WriteAllText(tokenFile, new string('x', 8 * 1024 * 1024));

        InvalidConfigurationException exception = Should.Throw<InvalidConfigurationException>(
            () => BearerToken.TryLoad(tokenFile, "", "management"));

        exception.Message.ShouldContain($"management token file {tokenFile} is larger than");
    }

    [Fact]
    public void MatchesOnlyTheExactToken()
    {
        string tokenFile = Path.Combine(root, "store-token");
        File.WriteAllText(tokenFile, "0123456789abcdef0123\n");

        BearerToken token = BearerToken.TryLoad(tokenFile, "", "model store").ShouldNotBeNull();

        token.Matches("0123456789abcdef0123").ShouldBeTrue();
        token.Matches("0123456789abcdef012").ShouldBeFalse();
        token.Matches("0123456789abcdef01234").ShouldBeFalse();
    }
}
