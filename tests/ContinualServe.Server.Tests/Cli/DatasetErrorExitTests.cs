using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>Commands that read Fashion-MNIST, given a directory whose training images are not gzip.</summary>
public sealed class DatasetErrorExitTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-idx-").FullName;

    public DatasetErrorExitTests()
    {
        string slice = Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist");
        foreach (string file in Directory.GetFiles(slice))
        {
            File.Copy(file, Path.Combine(directory, Path.GetFileName(file)));
        }

        File.WriteAllText(Path.Combine(directory, "train-images-idx3-ubyte.gz"), "not a gzip file");
    }

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Theory]
    [InlineData("experiment", "The experiment did not start: ")]
    [InlineData("demo", "The demo did not start: ")]
    [InlineData("produce", "")]
    public async Task GarbageGzipExitsWithTwo(string command, string prefix)
    {
        string images = Path.Combine(directory, "train-images-idx3-ubyte.gz");

        List<string> arguments = [command, "--data", directory];
        if (command == "demo")
        {
            arguments.AddRange(["--device", "cpu", "--urls", "http://127.0.0.1:0"]);
        }
        else if (command == "produce")
        {
            // Nothing listens on port 1: the dataset is read before any connection.
            arguments.AddRange(["--bootstrap-servers", "127.0.0.1:1"]);
        }

        (int exitCode, _, string standardError) = await ContinualServeProcess.RunAsync(arguments);

        exitCode.ShouldBe(2, standardError);
        standardError.ShouldStartWith(prefix + images + " is not a valid gzip file: ");
        standardError.ShouldNotContain("   at ");
    }
}
