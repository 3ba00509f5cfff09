using System.Buffers.Binary;
using System.IO.Compression;

namespace ContinualServe.Learner.Data;

/// <summary>
/// Images and labels read from a pair of IDX files (the MNIST and Fashion-MNIST format), optionally gzip-compressed.
/// Pixels are stored row by row, one byte each.
/// </summary>
public sealed class IdxDataset
{
    private const int ImagesMagic = 0x00000803;
    private const int LabelsMagic = 0x00000801;
    private const int FashionMnistSide = 28;
    private const int FashionMnistClasses = 10;

    private IdxDataset(byte[] pixels, byte[] labels, int rows, int columns)
    {
        Pixels = pixels;
        Labels = labels;
        Rows = rows;
        Columns = columns;
    }

    public byte[] Pixels { get; }

    public byte[] Labels { get; }

    public int Rows { get; }

    public int Columns { get; }

    public int Count => Labels.Length;

    public int FeatureCount => Rows * Columns;

    public ReadOnlySpan<byte> Image(int index) => Pixels.AsSpan(index * FeatureCount, FeatureCount);

    /// <summary>Reads an image file and its label file; a ".gz" suffix means gzip.</summary>
    public static IdxDataset Load(string imagesPath, string labelsPath)
    {
        byte[] images = ReadPossiblyCompressed(imagesPath);
        byte[] labels = ReadPossiblyCompressed(labelsPath);

        int imageCount = ReadHeader(images, ImagesMagic, 3, imagesPath, out int headerBytes, out int[] dimensions);
        int labelCount = ReadHeader(labels, LabelsMagic, 1, labelsPath, out int labelHeaderBytes, out _);
        if (imageCount != labelCount)
        {
            throw new InvalidDataException($"{imagesPath} holds {imageCount} images but {labelsPath} holds {labelCount} labels.");
        }

        long featureCount = (long)dimensions[1] * dimensions[2];
        long expectedImageBytes = headerBytes + ((long)imageCount * featureCount);
        if (images.Length != expectedImageBytes || labels.Length != labelHeaderBytes + labelCount)
        {
            throw new InvalidDataException(
                $"IDX files {imagesPath} and {labelsPath} are truncated or too long for {imageCount} examples of {dimensions[1]}x{dimensions[2]}.");
        }

        return new IdxDataset(
            images.AsSpan(headerBytes).ToArray(),
            labels.AsSpan(labelHeaderBytes).ToArray(),
            dimensions[1],
            dimensions[2]);
    }

    /// <summary>Loads the standard file pair (train or t10k) from a Fashion-MNIST directory.</summary>
    public static IdxDataset LoadFashionMnist(string directory, bool training)
    {
        string prefix = training ? "train" : "t10k";
        string imagesPath = FindFile(directory, $"{prefix}-images-idx3-ubyte");
        string labelsPath = FindFile(directory, $"{prefix}-labels-idx1-ubyte");
        IdxDataset dataset = Load(imagesPath, labelsPath);

        // The model's input layer and the split into tasks assume Fashion-MNIST's shape and classes.
        if (dataset.Rows != FashionMnistSide || dataset.Columns != FashionMnistSide)
        {
            throw new InvalidDataException(
                $"{imagesPath} contains {dataset.Rows}x{dataset.Columns} images, but Fashion-MNIST images are {FashionMnistSide}x{FashionMnistSide}.");
        }

        int invalidLabel = dataset.Labels.AsSpan().IndexOfAnyInRange((byte)FashionMnistClasses, byte.MaxValue);
        if (invalidLabel >= 0)
        {
            throw new InvalidDataException(
                $"{labelsPath} contains label {dataset.Labels[invalidLabel]} at example {invalidLabel}, but Fashion-MNIST labels are 0 to {FashionMnistClasses - 1}.");
        }

        return dataset;
    }

    /// <summary>
    /// Returns the error message for the first Fashion-MNIST file (train and t10k, images and labels) missing from
    /// <paramref name="directory"/>, or null when all four exist.
    /// </summary>
    public static string? FindMissingFashionMnist(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string[] baseNames = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];
        string? missing = baseNames.FirstOrDefault(baseName => TryFindFile(directory, baseName) is null);
        return missing is null ? null : MissingFileMessage(directory, missing);
    }

    private static string FindFile(string directory, string baseName) =>
        TryFindFile(directory, baseName)
        ?? throw new FileNotFoundException(MissingFileMessage(directory, baseName), Path.Combine(directory, baseName + ".gz"));

    private static string? TryFindFile(string directory, string baseName) =>
        new[] { baseName + ".gz", baseName }.Select(candidate => Path.Combine(directory, candidate)).FirstOrDefault(File.Exists);

    private static string MissingFileMessage(string directory, string baseName) =>
        $"Neither {baseName}.gz nor {baseName} exists in {directory}. Install the Debian package dataset-fashion-mnist or pass --data.";

    private static byte[] ReadPossiblyCompressed(string path)
    {
        if (!path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase))
        {
            return File.ReadAllBytes(path);
        }

        using FileStream file = File.OpenRead(path);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var buffer = new MemoryStream();
        try
        {
            gzip.CopyTo(buffer);
        }
        catch (InvalidDataException exception)
        {
            // GZipStream's message ("unsupported compression method" for a file that is not gzip) names no file.
            throw new InvalidDataException($"{path} is not a valid gzip file: {exception.Message}", exception);
        }

        return buffer.ToArray();
    }

    private static int ReadHeader(byte[] content, int magic, int dimensionCount, string path, out int headerBytes, out int[] dimensions)
    {
        headerBytes = 4 + (4 * dimensionCount);
        if (content.Length < headerBytes)
        {
            throw new InvalidDataException($"{path} is too short to be an IDX file.");
        }

        int actualMagic = BinaryPrimitives.ReadInt32BigEndian(content);
        if (actualMagic != magic)
        {
            throw new InvalidDataException($"{path} has IDX magic 0x{actualMagic:x8}; expected 0x{magic:x8}.");
        }

        dimensions = new int[dimensionCount];
        for (int index = 0; index < dimensionCount; index++)
        {
            dimensions[index] = BinaryPrimitives.ReadInt32BigEndian(content.AsSpan(4 + (4 * index)));
            if (dimensions[index] <= 0)
            {
                throw new InvalidDataException($"{path} has a non-positive dimension {dimensions[index]}.");
            }
        }

        return dimensions[0];
    }
}
