using System.Text;
using ContinualServe.Model.Store;
using Shouldly;
using Xunit;

namespace ContinualServe.Model.Tests.Store;

public sealed class GoldenSetTests : IDisposable
{
    private static readonly ModelSpec Spec = new() { InputShape = [4], Labels = ["a", "b"] };

    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-golden-set-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    // Indented JSON wrote each feature on a line of its own: an 8 MiB upload of Fashion-MNIST images became a 30 MB file.
    [Fact]
    public void SavedSetIsCompact()
    {
        GoldenSet golden = Set(Enumerable.Range(0, 50).Select(index => new GoldenExample(index % 2, [0.25f, 0.5f, 0.75f, 1f])));

        golden.Save(directory);

        string saved = File.ReadAllText(Path.Combine(directory, GoldenSet.FileName));
        saved.ShouldNotContain("\n");
        GoldenSet.TryLoad(directory)!.Examples.Count.ShouldBe(50);
    }

    [Fact]
    public void OverflowingFeatureIsNamed()
    {
        GoldenSet golden = GoldenSet.Parse(
            """{"examples":[{"label":0,"features":[0,0,0,0]},{"label":1,"features":[0,1e39,0,0]}]}"""u8, "upload");

        InvalidDataException exception = Should.Throw<InvalidDataException>(() => golden.Validate(Spec));

        exception.Message.ShouldStartWith("Golden example 1 has feature 1 that is infinite");
        exception.Message.ShouldContain("a number beyond the FP32 range, whose largest magnitude is 3.4028235E+38");
        exception.Message.ShouldContain("which is not a finite number");
    }

    // A hand-written file may give a feature as a string, which the JSON options read as a number.
    [Theory]
    [InlineData("\"NaN\"", "feature 2 that is NaN (the string \"NaN\"), which is not a finite number")]
    [InlineData("\"-Infinity\"", "feature 2 that is infinite (the string \"Infinity\" or \"-Infinity\"")]
    public void StringFeatureNotFiniteIsNamed(string value, string expected)
    {
        GoldenSet golden = GoldenSet.Parse(Encoding.UTF8.GetBytes($$"""{"examples":[{"label":0,"features":[0,0,{{value}},0]}]}"""), "golden-set.json");

        InvalidDataException exception = Should.Throw<InvalidDataException>(() => golden.Validate(Spec));

        exception.Message.ShouldStartWith("Golden example 0 has " + expected);
        exception.Message.ShouldNotContain("outside the FP32 range");
    }

    private static GoldenSet Set(IEnumerable<GoldenExample> examples) => new() { Examples = [.. examples], UploadedAt = DateTimeOffset.UnixEpoch };
}
