using Shouldly;
using Xunit;

namespace ContinualServe.DeployTests;

/// <summary>Static checks of the images: no docker daemon is available on the build machines to build them.</summary>
public sealed class DockerfileTests
{
    [Theory]
    [InlineData("Dockerfile")]
    [InlineData("Dockerfile.cuda")]
    public void ImageRunsContinualserveAsNonRoot(string name)
    {
        string[] lines = File.ReadAllLines(Path.Combine(ChartFiles.RepositoryRoot, "deploy", "docker", name));
        int lastFrom = Array.FindLastIndex(lines, line => line.StartsWith("FROM ", StringComparison.Ordinal));
        lastFrom.ShouldBeGreaterThanOrEqualTo(0);
        string[] finalStage = lines[lastFrom..];

        string user = finalStage.Last(line => line.StartsWith("USER ", StringComparison.Ordinal));
        user.ShouldNotContain("root");
        user.Split(' ')[1].ShouldNotBe("0");
        finalStage.ShouldContain(line => line.StartsWith("ENTRYPOINT ", StringComparison.Ordinal) && line.Contains("continualserve", StringComparison.Ordinal));
    }

    [Fact]
    public void CudaImageSelectsCudaTorchBackend()
    {
        string text = File.ReadAllText(Path.Combine(ChartFiles.RepositoryRoot, "deploy", "docker", "Dockerfile.cuda"));

        text.ShouldContain("-p:TorchBackend=cuda");
    }
}
