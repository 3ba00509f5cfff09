using System.Buffers.Binary;
using ContinualServe.Learner.Data;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Data;

public sealed class IdxDatasetTests : IDisposable
{
    // Labels of training examples 0..9 and the pixel sum of training image 0, read from the
    // full train-*-ubyte.gz files of the Debian package dataset-fashion-mnist with Python's gzip module.
    private static readonly byte[] FirstTrainingLabels = [9, 0, 0, 3, 0, 2, 7, 2, 5, 5];
    private const int FirstTrainingImagePixelSum = 76_247;

    private readonly TemporaryDirectory directory = new("idx-tests-");

    public void Dispose() => directory.Dispose();

    [Fact]
    public void SliceTrainingSetShape()
    {
        IdxDataset dataset = TestData.TrainingSet;

        dataset.Count.ShouldBe(3000);
        dataset.Rows.ShouldBe(28);
        dataset.Columns.ShouldBe(28);
        dataset.Pixels.Length.ShouldBe(3000 * 28 * 28);
    }

    [Fact]
    public void SliceTestSetShape()
    {
        IdxDataset dataset = TestData.TestSet;

        dataset.Count.ShouldBe(500);
        dataset.Rows.ShouldBe(28);
        dataset.Columns.ShouldBe(28);
        dataset.Pixels.Length.ShouldBe(500 * 28 * 28);
    }

    [Fact]
    public void SliceFirstLabelsMatchSource()
    {
        TestData.TrainingSet.Labels.AsSpan(0, 10).ToArray().ShouldBe(FirstTrainingLabels);
    }

    [Fact]
    public void SliceFirstImagePixelSum()
    {
        int sum = 0;
        foreach (byte pixel in TestData.TrainingSet.Image(0))
        {
            sum += pixel;
        }

        sum.ShouldBe(FirstTrainingImagePixelSum);
    }

    [Fact]
    public void RawFilesLoadWithoutGzip()
    {
        string images = WriteImages("images", magic: 0x803, count: 2, rows: 2, columns: 3, pixelBytes: 12);
        string labels = WriteLabels("labels", count: 2, labelBytes: [4, 7]);

        IdxDataset dataset = IdxDataset.Load(images, labels);

        dataset.Count.ShouldBe(2);
        dataset.Rows.ShouldBe(2);
        dataset.Columns.ShouldBe(3);
        dataset.Labels.ShouldBe(new byte[] { 4, 7 });
        dataset.Image(1).ToArray().ShouldBe(new byte[] { 6, 7, 8, 9, 10, 11 });
    }

    [Fact]
    public void TruncatedImagesThrow()
    {
        string images = WriteImages("images", magic: 0x803, count: 2, rows: 2, columns: 3, pixelBytes: 11);
        string labels = WriteLabels("labels", count: 2, labelBytes: [4, 7]);

        Should.Throw<InvalidDataException>(() => IdxDataset.Load(images, labels));
    }

    [Fact]
    public void TruncatedLabelsThrow()
    {
        string images = WriteImages("images", magic: 0x803, count: 2, rows: 2, columns: 3, pixelBytes: 12);
        string labels = WriteLabels("labels", count: 2, labelBytes: [4]);

        Should.Throw<InvalidDataException>(() => IdxDataset.Load(images, labels));
    }

    [Fact]
    public void TruncatedHeaderThrows()
    {
        string images = Path.Combine(directory.Path, "images");
        File.WriteAllBytes(images, [0, 0, 8, 3, 0, 0]);
        string labels = WriteLabels("labels", count: 1, labelBytes: [4]);

        Should.Throw<InvalidDataException>(() => IdxDataset.Load(images, labels));
    }

    [Fact]
    public void TruncatedGzipSliceThrows()
    {
        byte[] compressed = File.ReadAllBytes(Path.Combine(TestData.SliceDirectory, "train-images-idx3-ubyte.gz"));
        string images = Path.Combine(directory.Path, "train-images-idx3-ubyte.gz");
        File.WriteAllBytes(images, compressed.AsSpan(0, compressed.Length / 2).ToArray());
        string labels = Path.Combine(TestData.SliceDirectory, "train-labels-idx1-ubyte.gz");

        Should.Throw<InvalidDataException>(() => IdxDataset.Load(images, labels));
    }

    [Fact]
    public void WrongImagesMagicThrows()
    {
        // 0x801 is the label-file magic, so an image/label swap is caught too.
        string images = WriteImages("images", magic: 0x801, count: 2, rows: 2, columns: 3, pixelBytes: 12);
        string labels = WriteLabels("labels", count: 2, labelBytes: [4, 7]);

        InvalidDataException exception = Should.Throw<InvalidDataException>(() => IdxDataset.Load(images, labels));

        exception.Message.ShouldContain("magic");
    }

    [Fact]
    public void MismatchedCountsThrow()
    {
        string images = WriteImages("images", magic: 0x803, count: 2, rows: 2, columns: 3, pixelBytes: 12);
        string labels = WriteLabels("labels", count: 3, labelBytes: [4, 7, 1]);

        Should.Throw<InvalidDataException>(() => IdxDataset.Load(images, labels));
    }

    [Fact]
    public void GarbageGzipNamesFile()
    {
        string images = Path.Combine(directory.Path, "images.gz");
        File.WriteAllBytes(images, [0x1f, 0x8b, 0x99, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        string labels = WriteLabels("labels", count: 1, labelBytes: [4]);

        InvalidDataException exception = Should.Throw<InvalidDataException>(() => IdxDataset.Load(images, labels));

        exception.Message.ShouldStartWith($"{images} is not a valid gzip file: ");
    }

    [Fact]
    public void WrongImageSizeNamesFile()
    {
        CopySlice("t10k-labels-idx1-ubyte.gz");
        string images = WriteImages("t10k-images-idx3-ubyte", magic: 0x803, count: 500, rows: 2, columns: 3, pixelBytes: 500 * 6);

        InvalidDataException exception = Should.Throw<InvalidDataException>(() => IdxDataset.LoadFashionMnist(directory.Path, training: false));

        exception.Message.ShouldBe($"{images} contains 2x3 images, but Fashion-MNIST images are 28x28.");
    }

    [Fact]
    public void LabelAboveNineNamesFile()
    {
        CopySlice("t10k-images-idx3-ubyte.gz");
        byte[] labelBytes = new byte[500];
        labelBytes[7] = 12;
        string labels = WriteLabels("t10k-labels-idx1-ubyte", count: 500, labelBytes: labelBytes);

        InvalidDataException exception = Should.Throw<InvalidDataException>(() => IdxDataset.LoadFashionMnist(directory.Path, training: false));

        exception.Message.ShouldBe($"{labels} contains label 12 at example 7, but Fashion-MNIST labels are 0 to 9.");
    }

    [Fact]
    public void MissingDirectoryThrowsFileNotFound()
    {
        Should.Throw<FileNotFoundException>(() => IdxDataset.LoadFashionMnist(Path.Combine(directory.Path, "absent"), training: true));
    }

    private void CopySlice(string fileName) =>
        File.Copy(Path.Combine(TestData.SliceDirectory, fileName), Path.Combine(directory.Path, fileName));

    private string WriteImages(string name, int magic, int count, int rows, int columns, int pixelBytes)
    {
        var content = new byte[16 + pixelBytes];
        BinaryPrimitives.WriteInt32BigEndian(content, magic);
        BinaryPrimitives.WriteInt32BigEndian(content.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(content.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(content.AsSpan(12), columns);
        for (int index = 0; index < pixelBytes; index++)
        {
            content[16 + index] = (byte)index;
        }

        string path = Path.Combine(directory.Path, name);
        File.WriteAllBytes(path, content);
        return path;
    }

    private string WriteLabels(string name, int count, byte[] labelBytes)
    {
        var content = new byte[8 + labelBytes.Length];
        BinaryPrimitives.WriteInt32BigEndian(content, 0x801);
        BinaryPrimitives.WriteInt32BigEndian(content.AsSpan(4), count);
        labelBytes.CopyTo(content, 8);

        string path = Path.Combine(directory.Path, name);
        File.WriteAllBytes(path, content);
        return path;
    }
}
