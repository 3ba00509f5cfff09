using System.Runtime.InteropServices;
using ContinualServe.Learner.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualServe.Learner.Training;

/// <summary>
/// Running sums of a ridge regression from fixed features to one-hot labels: the Gram matrix X^T X and the
/// cross term X^T Y, where each row of X is one example's features followed by a constant 1 for the bias.
/// The head fitted from the sums after any stream equals the head fitted on all of that stream at once, in any
/// order, so the examples of earlier tasks keep their full weight without being stored. Kept in float64,
/// because the sums grow with every example and the solve needs their precision.
/// </summary>
internal sealed class AnalyticHead : IDisposable
{
    private const int FileMagic = 0x48414353; // "SCAH", little-endian
    private const int FileFormatVersion = 1;

    // 2^27 float64 values (1 GiB), so that each slice's bytes fit in a Span, whose length is at most int.MaxValue.
    private const long MaxChunkElements = 1L << 27;

    private readonly int featureCount;
    private readonly int classCount;
    private readonly Tensor gram;
    private readonly Tensor cross;

    // TorchSharp 0.107 passes an implicitly converted Scalar by raw handle and may finalize it during the call,
    // so the alpha of every add is this field.
    private readonly Scalar addAlpha = 1.0.ToScalar();

    public AnalyticHead(int featureCount, int classCount, Device device)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(featureCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(classCount, 2);
        this.featureCount = featureCount;
        this.classCount = classCount;
        gram = torch.zeros([featureCount + 1, featureCount + 1], ScalarType.Float64, device).DetachFromDisposeScope();
        cross = torch.zeros([featureCount + 1, classCount], ScalarType.Float64, device).DetachFromDisposeScope();
    }

    /// <summary>Adds a batch: <paramref name="features"/> is N x featureCount, <paramref name="labels"/> N class indices.</summary>
    public void Accumulate(Tensor features, Tensor labels)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        Tensor rows = torch.cat([features.to(ScalarType.Float64), torch.ones([features.shape[0], 1], ScalarType.Float64, features.device)], 1);
        Tensor targets = nn.functional.one_hot(labels, classCount).to(ScalarType.Float64);
        gram.add_(rows.t().mm(rows), addAlpha);
        cross.add_(rows.t().mm(targets), addAlpha);
    }

    /// <summary>
    /// Solves (X^T X + <paramref name="regularization"/> I) B = X^T Y and returns the head's weight
    /// (classes x features) and bias as float32 tensors on the sums' device. A class without examples gets
    /// the bias <paramref name="unseenClassLogit"/>, so that the head never predicts it. The caller disposes both.
    /// </summary>
    public (Tensor Weight, Tensor Bias) Fit(double regularization, float unseenClassLogit)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using Scalar penalty = regularization.ToScalar();
        Tensor regularized = torch.eye(featureCount + 1, dtype: ScalarType.Float64, device: gram.device).mul_(penalty).add_(gram, addAlpha);
        Tensor solution = torch.linalg.solve(regularized, cross);
        Tensor weight = solution.narrow(0, 0, featureCount).t().to(ScalarType.Float32).contiguous();
        Tensor bias = solution[featureCount].to(ScalarType.Float32).contiguous();

        using Scalar unseen = unseenClassLogit.ToScalar();
        using Scalar noExamples = 0.0.ToScalar();
        bias.masked_fill_(ClassCounts().eq(noExamples).to(bias.device), unseen);
        return (weight.MoveToOuterDisposeScope(), bias.MoveToOuterDisposeScope());
    }

    /// <summary>Returns the classes with at least one example in the sums, in ascending order.</summary>
    public int[] TrainedClasses()
    {
        using Tensor row = ClassCounts();
        using Tensor counts = row.cpu();
        double[] values = counts.data<double>().ToArray();
        return Enumerable.Range(0, classCount).Where(label => values[label] > 0).ToArray();
    }

    // The bias column of X is all ones, so its row of X^T Y counts the examples of each class.
    private Tensor ClassCounts() => cross[featureCount];

    /// <summary>
    /// Writes the sums for a checkpoint. Does not flush to disk, because the checkpoint store flushes every file
    /// it contains before it commits the checkpoint. The values are written from the tensors' memory, without a
    /// managed copy, because the Gram matrix takes 8 (featureCount + 1)^2 bytes, about 2.1 GB for 16,384 features.
    /// </summary>
    public void Save(string path) => Save(path, MaxChunkElements);

    /// <summary>
    /// Writes the sums as <see cref="Save(string)"/> does, in slices of at most <paramref name="chunkElements"/>
    /// values, because a tensor's <see cref="Tensor.bytes"/> is one Span, which contains at most int.MaxValue bytes.
    /// </summary>
    internal void Save(string path, long chunkElements)
    {
        using TensorFileImage image = ToFileImage(chunkElements);
        image.WriteFile(path);
    }

    /// <summary>
    /// Lays out the file that <see cref="Save(string)"/> writes over the sums' memory, so that a thread-pool task can
    /// write it while the learner thread polls the consumer. The sums must not change until the image is disposed.
    /// </summary>
    internal TensorFileImage ToFileImage(long chunkElements = MaxChunkElements)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkElements, 1);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Analytic head files are little-endian, and this machine is big-endian.");
        }

        var image = new TensorFileImage();
        try
        {
            image.Writer.Write(FileMagic);
            image.Writer.Write(FileFormatVersion);
            image.Writer.Write(featureCount);
            image.Writer.Write(classCount);
            foreach (Tensor sums in new[] { gram, cross })
            {
                // The slices are views, which keep the values' memory alive after these two are disposed.
                using Tensor values = sums.cpu().contiguous();
                using Tensor flat = values.view(-1);
                long count = flat.numel();
                for (long start = 0; start < count; start += chunkElements)
                {
                    image.AppendTensor(flat.narrow(0, start, Math.Min(chunkElements, count - start)));
                }
            }

            return image;
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    /// <summary>Returns true when <paramref name="path"/> is a file that starts with the header that <see cref="Save"/> writes.</summary>
    public static bool IsHeadFile(string path)
    {
        if (!File.Exists(path))
        {
            return false;
        }

        using var reader = new BinaryReader(File.OpenRead(path));
        return reader.BaseStream.Length >= 16 && reader.ReadInt32() == FileMagic;
    }

    /// <summary>The number of features, the width of the Gram matrix less the bias column.</summary>
    public int FeatureCount => featureCount;

    /// <summary>Replaces the sums with ones written by <see cref="Save(string)"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not an analytic head file, its sizes differ from this head's, or its length does not fit them.</exception>
    public void Load(string path) => Load(Read(path, featureCount, classCount));

    /// <summary>Replaces the sums with ones that <see cref="Read"/> read for this head's sizes.</summary>
    public void Load(AnalyticSums sums)
    {
        ArgumentNullException.ThrowIfNull(sums);
        if (sums.FeatureCount != featureCount || sums.ClassCount != classCount)
        {
            throw new ArgumentException(
                $"The sums were read for {sums.FeatureCount} features and {sums.ClassCount} classes; this head has {featureCount} and {classCount}.",
                nameof(sums));
        }

        using var noGrad = torch.no_grad();
        foreach ((Tensor target, double[] data) in new[] { (gram, sums.Gram), (cross, sums.Cross) })
        {
            using Tensor values = torch.tensor(data, target.shape);
            using Tensor placed = values.to(target.device);
            target.copy_(placed);
        }
    }

    /// <summary>
    /// Reads sums written by <see cref="Save(string)"/> for a head of <paramref name="featureCount"/> features and
    /// <paramref name="classCount"/> classes into managed memory. Touches no tensor, so it runs on any thread, such as a
    /// thread-pool task while the learner thread polls the consumer.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not an analytic head file, its sizes differ from the given ones, or its length does not fit them.</exception>
    public static AnalyticSums Read(string path, int featureCount, int classCount)
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        if (reader.BaseStream.Length < 16 || reader.ReadInt32() != FileMagic || reader.ReadInt32() != FileFormatVersion)
        {
            throw new InvalidDataException(
                $"{path} is not an analytic head file; the checkpoint was written by another training strategy.");
        }

        int savedFeatures = reader.ReadInt32();
        int savedClasses = reader.ReadInt32();
        if (savedFeatures != featureCount || savedClasses != classCount)
        {
            throw new InvalidDataException(
                $"{path} has sums for {savedFeatures} features and {savedClasses} classes; the model has {featureCount} and {classCount}.");
        }

        // Checked before any sum is read, so that a truncated file leaves the head's sums as they were.
        long gramCount = (featureCount + 1L) * (featureCount + 1L);
        long crossCount = (featureCount + 1L) * classCount;
        long expectedBytes = 16 + (sizeof(double) * (gramCount + crossCount));
        if (reader.BaseStream.Length != expectedBytes)
        {
            throw new InvalidDataException(
                $"{path} is {reader.BaseStream.Length} bytes, but sums for {featureCount} features and {classCount} classes take {expectedBytes}. The file is truncated or damaged.");
        }

        double[] gramValues = ReadValues(reader.BaseStream, gramCount);
        double[] crossValues = ReadValues(reader.BaseStream, crossCount);
        return new AnalyticSums(featureCount, classCount, gramValues, crossValues);
    }

    // Reads in slices of MaxChunkElements, because the bytes of a span of more than 2^28 float64 values overflow an int.
    private static double[] ReadValues(Stream source, long count)
    {
        var values = new double[count];
        for (long start = 0; start < count; start += MaxChunkElements)
        {
            int length = (int)Math.Min(MaxChunkElements, count - start);
            source.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan((int)start, length)));
        }

        return values;
    }

    public void Dispose()
    {
        gram.Dispose();
        cross.Dispose();
        addAlpha.Dispose();
    }
}
