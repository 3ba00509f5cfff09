using System.Buffers.Binary;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Ingestion;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Ingestion;

public sealed class BinaryExampleRecordTests
{
    private const int FeatureCount = 784;
    private const int ClassCount = 10;

    private readonly ExampleRecordCodec codec = new(FeatureCount, ClassCount);

    [Fact]
    public void PixelRecordRoundTrips()
    {
        IdxDataset dataset = TestData.TrainingSet;
        byte[] record = BinaryExampleRecord.Encode("train-00003", task: 2, label: dataset.Labels[3], dataset.Image(3));

        bool decoded = codec.TryDecode(record, out LabeledExample? example, out string error);

        decoded.ShouldBeTrue(error);
        example.ShouldNotBeNull();
        example.Id.ShouldBe("train-00003");
        example.Task.ShouldBe(2);
        example.Label.ShouldBe(dataset.Labels[3]);
        example.Features.ShouldBe(dataset.Image(3).ToArray().Select(pixel => (float)pixel).ToArray());
    }

    [Fact]
    public void SliceRecordsAreThirdOfJson()
    {
        // The header, the 11-byte id and one byte per pixel: 815 bytes. The JSON records of the committed slice take
        // about 2,260 bytes on average.
        IdxDataset dataset = TestData.TrainingSet;
        long binaryBytes = 0;
        long jsonBytes = 0;
        for (int index = 0; index < dataset.Count; index++)
        {
            string id = "train-" + index.ToString("D5", System.Globalization.CultureInfo.InvariantCulture);
            byte[] binary = BinaryExampleRecord.Encode(id, 1, dataset.Labels[index], dataset.Image(index));
            binary.Length.ShouldBe(BinaryExampleRecord.HeaderBytes + 11 + FeatureCount);
            binaryBytes += binary.Length;
            jsonBytes += ExampleRecordCodec.Encode(id, 1, dataset.Labels[index], dataset.Image(index)).Length;
        }

        ((double)binaryBytes / jsonBytes).ShouldBeInRange(0.3, 0.4);
    }

    [Fact]
    public void WholeFloatsUseOneBytePerFeature()
    {
        float[] features = Enumerable.Range(0, FeatureCount).Select(index => (float)(index % 256)).ToArray();

        byte[] record = BinaryExampleRecord.Encode("whole", 1, 0, features);

        record[5].ShouldBe(BinaryExampleRecord.BytesEncoding);
        record.Length.ShouldBe(BinaryExampleRecord.HeaderBytes + 5 + FeatureCount);
    }

    [Fact]
    public void FloatRecordKeepsEveryValue()
    {
        float[] features = Enumerable.Range(0, FeatureCount).Select(index => (index * 0.37f) - 100f).ToArray();
        features[7] = float.Epsilon;
        features[8] = -0f;
        features[9] = 256f;

        byte[] record = BinaryExampleRecord.Encode("ünïcode-id", 3, 9, features);
        bool decoded = codec.TryDecode(record, out LabeledExample? example, out string error);

        record[5].ShouldBe(BinaryExampleRecord.FloatEncoding);
        decoded.ShouldBeTrue(error);
        example!.Id.ShouldBe("ünïcode-id");
        example.Label.ShouldBe(9);
        example.Features.ShouldBe(features);
    }

    [Fact]
    public void NonFiniteFeatureNotEncoded()
    {
        float[] features = new float[FeatureCount];
        features[5] = float.NaN;

        Should.Throw<ArgumentException>(() => BinaryExampleRecord.Encode("nan", 1, 0, features)).Message.ShouldContain("not finite");
    }

    [Fact]
    public void JsonRecordsStillDecode()
    {
        byte[] json = ExampleRecordCodec.Encode("json-1", 1, 1, new byte[FeatureCount]);

        codec.TryDecode(json, out LabeledExample? example, out string error).ShouldBeTrue(error);
        example!.Id.ShouldBe("json-1");
    }

    [Fact]
    public void JsonLinesRefuseBinaryRecord()
    {
        // A JSON lines file contains JSON records only, so a binary record there is an error, not a second format.
        byte[] binary = BinaryExampleRecord.Encode("binary-1", 1, 1, new byte[FeatureCount]);

        codec.TryDecodeJson(binary, out _, out string error).ShouldBeFalse();
        error.ShouldContain("JSON");
    }

    [Theory]
    [InlineData("short", "shorter than its 20-byte header")]
    [InlineData("version", "format version 2; this learner reads version 1")]
    [InlineData("encoding", "feature encoding 3")]
    [InlineData("task", "field 'task' is 0")]
    [InlineData("label", "field 'label' is 10; expected 0..9")]
    [InlineData("negative-label", "field 'label' is -1")]
    [InlineData("count", "field 'features' has 783 values; expected 784")]
    [InlineData("empty-id", "field 'id' is empty")]
    [InlineData("bad-utf8", "field 'id' is not valid UTF-8")]
    [InlineData("truncated", "but its header describes")]
    [InlineData("trailing", "but its header describes")]
    [InlineData("nan", "field 'features' item 2 is not finite")]
    public void InvalidRecordNamesProblem(string damage, string expected)
    {
        byte[] record = Damaged(damage);

        bool decoded = codec.TryDecode(record, out LabeledExample? example, out string error);

        decoded.ShouldBeFalse();
        example.ShouldBeNull();
        error.ShouldContain(expected);
    }

    [Fact]
    public void RandomBytesNeverThrow()
    {
        // 20,000 records that start with the magic: random lengths and bytes, and valid records with random bytes
        // overwritten. Each must decode or give a reason, and never throw.
        var random = new Random(7);
        byte[] valid = BinaryExampleRecord.Encode("fuzz", 1, 3, new byte[FeatureCount]);
        int decoded = 0;
        for (int round = 0; round < 20_000; round++)
        {
            byte[] record;
            if (round % 2 == 0)
            {
                record = new byte[random.Next(4, 2 * valid.Length)];
                random.NextBytes(record);
                "\0CSE"u8.CopyTo(record);
            }
            else
            {
                record = (byte[])valid.Clone();
                for (int change = 0; change < 3; change++)
                {
                    record[random.Next(4, BinaryExampleRecord.HeaderBytes + 4)] = (byte)random.Next(256);
                }
            }

            bool ok = codec.TryDecode(record, out LabeledExample? example, out string error);
            (ok ? example is not null && error.Length == 0 : example is null && error.Length > 0).ShouldBeTrue(error);
            decoded += ok ? 1 : 0;
        }

        decoded.ShouldBeInRange(1, 19_999, "the records must include both valid and invalid ones");
    }

    [Fact]
    public void OversizedRecordRejected()
    {
        var small = new ExampleRecordCodec(FeatureCount, ClassCount, maxRecordBytes: 500);
        byte[] record = BinaryExampleRecord.Encode("big", 1, 0, new byte[FeatureCount]);

        small.TryDecode(record, out _, out string error).ShouldBeFalse();
        error.ShouldContain("the limit is 500");
    }

    [Fact]
    public void FileValidationSizesChosenFormat()
    {
        // Twenty features, all 0 but one 0.5: short in JSON, but 4 bytes each as binary floats. With a limit between the
        // two sizes the file is valid for JSON records and invalid for binary ones.
        float[] features = new float[20];
        features[19] = 0.5f;
        var example = new LabeledExample("a", 1, 0, features);
        int jsonBytes = ExampleProducer.Encode(RecordFormat.Json, example).Length;
        int binaryBytes = ExampleProducer.Encode(RecordFormat.Binary, example).Length;
        binaryBytes.ShouldBeGreaterThan(jsonBytes);
        string path = Path.Combine(Path.GetTempPath(), "continualserve-binary-size-" + Guid.NewGuid().ToString("N") + ".csv");
        File.WriteAllText(path, "id,task,label," + string.Join(',', Enumerable.Range(0, 20).Select(index => "f" + index)) + "\na,1,0," + string.Join(',', features.Select(feature => feature.ToString(System.Globalization.CultureInfo.InvariantCulture))) + "\n");
        var limited = new ExampleRecordCodec(20, ClassCount, maxRecordBytes: jsonBytes);
        try
        {
            ExampleFileReader.Validate(path, ExampleFileFormat.Csv, limited, RecordFormat.Json).ShouldBe(1);
            Should.Throw<ExampleFileException>(() => ExampleFileReader.Validate(path, ExampleFileFormat.Csv, limited, RecordFormat.Binary))
                .Message.ShouldContain($"encodes to a {binaryBytes}-byte record; the limit is {jsonBytes}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void IdTooLongForBinaryIsInvalidLine()
    {
        string path = Path.Combine(Path.GetTempPath(), "continualserve-binary-id-" + Guid.NewGuid().ToString("N") + ".csv");
        File.WriteAllText(path, "id,task,label,f0\n" + new string('x', BinaryExampleRecord.MaxIdBytes + 1) + ",1,0,7\n");
        var codec = new ExampleRecordCodec(1, ClassCount);
        try
        {
            ExampleFileReader.Validate(path, ExampleFileFormat.Csv, codec, RecordFormat.Json).ShouldBe(1);
            Should.Throw<ExampleFileException>(() => ExampleFileReader.Validate(path, ExampleFileFormat.Csv, codec, RecordFormat.Binary))
                .Message.ShouldContain("line 2: field 'id' is 65536 bytes in UTF-8; the binary record format allows at most 65535");
        }
        finally
        {
            File.Delete(path);
        }
    }

    // A valid record of id "abc", then the damage named by the test case.
    private static byte[] Damaged(string damage)
    {
        byte[] pixels = new byte[FeatureCount];
        byte[] record = BinaryExampleRecord.Encode("abc", 1, 4, pixels);
        switch (damage)
        {
            case "short":
                return record[..12];
            case "version":
                record[4] = 2;
                return record;
            case "encoding":
                record[5] = 3;
                return record;
            case "task":
                BinaryPrimitives.WriteInt32LittleEndian(record.AsSpan(6), 0);
                return record;
            case "label":
                BinaryPrimitives.WriteInt32LittleEndian(record.AsSpan(10), ClassCount);
                return record;
            case "negative-label":
                BinaryPrimitives.WriteInt32LittleEndian(record.AsSpan(10), -1);
                return record;
            case "count":
                BinaryPrimitives.WriteInt32LittleEndian(record.AsSpan(14), FeatureCount - 1);
                return record;
            case "empty-id":
                BinaryPrimitives.WriteUInt16LittleEndian(record.AsSpan(18), 0);
                return record;
            case "bad-utf8":
                record[BinaryExampleRecord.HeaderBytes] = 0xC3;
                record[BinaryExampleRecord.HeaderBytes + 1] = 0x28;
                return record;
            case "truncated":
                return record[..^1];
            case "trailing":
                return [.. record, 0];
            case "nan":
                float[] features = new float[FeatureCount];
                features[2] = 0.5f;
                byte[] floats = BinaryExampleRecord.Encode("abc", 1, 4, features);
                BinaryPrimitives.WriteSingleLittleEndian(floats.AsSpan(BinaryExampleRecord.HeaderBytes + 3 + 8), float.NaN);
                return floats;
            default:
                throw new ArgumentOutOfRangeException(nameof(damage), damage, "unknown damage");
        }
    }
}
