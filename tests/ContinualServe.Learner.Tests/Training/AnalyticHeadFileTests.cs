using ContinualServe.Learner.Training;
using Shouldly;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Tests.Training;

/// <summary>The analytic head's checkpoint file: its bytes, and what saving it allocates.</summary>
public sealed class AnalyticHeadFileTests
{
    [Theory]
    [InlineData(1L)]
    [InlineData(4L)]
    [InlineData(9L)]
    [InlineData(1L << 27)]
    public void SaveWritesKnownBytes(long chunkElements)
    {
        // Rows of X are (1, 2, 1) and (3, 4, 1) with labels 0 and 1, so X^T X and X^T Y are known by hand.
        using var head = new AnalyticHead(featureCount: 2, classCount: 2, CPU);
        using (Tensor features = torch.tensor(new float[] { 1, 2, 3, 4 }, [2, 2]))
        using (Tensor labels = torch.tensor(new long[] { 0, 1 }))
        {
            head.Accumulate(features, labels);
        }

        double[] gram = [10, 14, 4, 14, 20, 6, 4, 6, 2];
        double[] cross = [1, 3, 2, 4, 1, 1];
        string path = TemporaryPath();
        try
        {
            head.Save(path, chunkElements);

            File.ReadAllBytes(path).ShouldBe(ExpectedFile(2, 2, gram, cross));
        }
        finally
        {
            File.Delete(path);
        }
    }

    // The learner reads the sums into managed memory on a thread-pool task, then copies them into the head's tensors.
    [Fact]
    public void ReadReturnsSavedSums()
    {
        using var head = new AnalyticHead(featureCount: 2, classCount: 2, CPU);
        using (Tensor features = torch.tensor(new float[] { 1, 2, 3, 4 }, [2, 2]))
        using (Tensor labels = torch.tensor(new long[] { 0, 1 }))
        {
            head.Accumulate(features, labels);
        }

        string path = TemporaryPath();
        try
        {
            head.Save(path);

            AnalyticSums sums = AnalyticHead.Read(path, featureCount: 2, classCount: 2);
            sums.Gram.ShouldBe([10, 14, 4, 14, 20, 6, 4, 6, 2]);
            sums.Cross.ShouldBe([1, 3, 2, 4, 1, 1]);
            InvalidDataException misfit = Should.Throw<InvalidDataException>(() => AnalyticHead.Read(path, featureCount: 3, classCount: 2));
            misfit.Message.ShouldContain("has sums for 2 features");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void SavedSumsLoadUnchanged()
    {
        torch.manual_seed(3);
        using var head = new AnalyticHead(featureCount: 20, classCount: 4, CPU);
        using (Tensor features = torch.rand([50, 20]))
        using (Tensor labels = torch.randint(0, 3, [50], ScalarType.Int64))
        {
            head.Accumulate(features, labels);
        }

        string path = TemporaryPath();
        string copyPath = TemporaryPath();
        try
        {
            head.Save(path, chunkElements: 100);
            using var loaded = new AnalyticHead(featureCount: 20, classCount: 4, CPU);
            loaded.Load(path);
            loaded.Save(copyPath);

            File.ReadAllBytes(copyPath).ShouldBe(File.ReadAllBytes(path));
            loaded.TrainedClasses().ShouldBe(head.TrainedClasses());
        }
        finally
        {
            File.Delete(path);
            File.Delete(copyPath);
        }
    }

    [Fact]
    public void SaveCopiesNoSums()
    {
        const int FeatureCount = 255;
        torch.manual_seed(4);
        using var head = new AnalyticHead(FeatureCount, classCount: 10, CPU);
        using (Tensor features = torch.rand([64, FeatureCount]))
        using (Tensor labels = torch.randint(0, 10, [64], ScalarType.Int64))
        {
            head.Accumulate(features, labels);
        }

        string path = TemporaryPath();
        try
        {
            // The first save compiles the method and allocates what the runtime needs once.
            head.Save(path);
            long before = GC.GetAllocatedBytesForCurrentThread();
            head.Save(path);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

            // The Gram matrix alone is 524,288 bytes of float64. The file stream's 64 KiB buffer is allocated by every save.
            long sumsBytes = sizeof(double) * (FeatureCount + 1) * (FeatureCount + 1 + 10);
            allocated.ShouldBeLessThan(sumsBytes / 2);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static string TemporaryPath() => Path.Combine(Path.GetTempPath(), $"analytic-head-{Guid.NewGuid():N}.bin");

    // The version 1 layout: magic "SCAH", format version, feature count and class count as little-endian int32, then
    // X^T X and X^T Y as row-major float64.
    private static byte[] ExpectedFile(int featureCount, int classCount, double[] gram, double[] cross)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream))
        {
            writer.Write(0x48414353);
            writer.Write(1);
            writer.Write(featureCount);
            writer.Write(classCount);
            foreach (double value in gram.Concat(cross))
            {
                writer.Write(value);
            }
        }

        return stream.ToArray();
    }
}
