using System.Text;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Ingestion;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Ingestion;

public sealed class ExampleRecordCodecTests
{
    private const int FeatureCount = 784;
    private const int ClassCount = 10;

    private readonly ExampleRecordCodec codec = new(FeatureCount, ClassCount);

    [Fact]
    public void EncodeDecodeRoundTrips()
    {
        IdxDataset dataset = TestData.TrainingSet;
        byte[] record = ExampleRecordCodec.Encode("train-00003", task: 2, label: dataset.Labels[3], dataset.Image(3));

        bool decoded = codec.TryDecode(record, out LabeledExample? example, out string error);

        decoded.ShouldBeTrue(error);
        error.ShouldBeEmpty();
        example.ShouldNotBeNull();
        example.Id.ShouldBe("train-00003");
        example.Task.ShouldBe(2);
        example.Label.ShouldBe(3);
        example.Features.ShouldBe(dataset.Image(3).ToArray().Select(pixel => (float)pixel).ToArray());
    }

    [Fact]
    public void FloatFeaturesEncodeDecodeRoundTrips()
    {
        float[] features = new float[FeatureCount];
        float[] values = [0f, 255f, 0.1f, -3.25f, 1e-7f, 3e20f, -16_777_216f, 16_777_217.5f];
        values.CopyTo(features, 0);
        byte[] record = ExampleRecordCodec.Encode("csv-1", task: 4, label: 9, features);

        bool decoded = codec.TryDecode(record, out LabeledExample? example, out string error);

        decoded.ShouldBeTrue(error);
        example.ShouldNotBeNull();
        example.Id.ShouldBe("csv-1");
        example.Task.ShouldBe(4);
        example.Label.ShouldBe(9);
        example.Features.ShouldBe(features);
        Encoding.UTF8.GetString(record).ShouldStartWith("{\"id\":\"csv-1\",\"task\":4,\"label\":9,\"features\":[0,255,0.1,-3.25,");
    }

    [Fact]
    public void NonFiniteFeatureNotEncoded()
    {
        float[] features = new float[FeatureCount];
        features[3] = float.NaN;

        Should.Throw<ArgumentException>(() => ExampleRecordCodec.Encode("csv-1", task: 1, label: 0, features));
    }

    [Fact]
    public void NonIntegerFeaturesKeepTheirValue()
    {
        string values = "[" + string.Join(",", Enumerable.Repeat("0", FeatureCount - 5)) + ",0.5,-3,1e2,255,1234]";

        codec.TryDecode(Encoding.UTF8.GetBytes(Record(features: values)), out LabeledExample? example, out string error).ShouldBeTrue(error);

        example.ShouldNotBeNull();
        example.Features[^5..].ShouldBe([0.5f, -3f, 100f, 255f, 1234f]);
    }

    [Fact]
    public void UnknownFieldsAreSkipped()
    {
        string json = Record(extra: "\"source\":{\"camera\":[1,2]},");

        codec.TryDecode(Encoding.UTF8.GetBytes(json), out LabeledExample? example, out string error).ShouldBeTrue(error);
        example.ShouldNotBeNull();
        example.Features.Length.ShouldBe(FeatureCount);
    }

    [Fact]
    public void WhitespaceAndFieldOrderAccepted()
    {
        string json = "{\n  \"features\" : [ " + string.Join(" ,\t", Enumerable.Repeat("7", FeatureCount)) + " ],\r\n"
            + "  \"label\": 4, \"task\": 3, \"id\": \"train-00009\"\n}\n";

        codec.TryDecode(Encoding.UTF8.GetBytes(json), out LabeledExample? example, out string error).ShouldBeTrue(error);

        example.ShouldNotBeNull();
        example.Id.ShouldBe("train-00009");
        example.Task.ShouldBe(3);
        example.Label.ShouldBe(4);
        example.Features.ShouldAllBe(value => value == 7f);
    }

    [Fact]
    public void EscapedIdUnescaped()
    {
        string json = Record(id: "\"train\\u002d1\"");

        codec.TryDecode(Encoding.UTF8.GetBytes(json), out LabeledExample? example, out string error).ShouldBeTrue(error);

        example.ShouldNotBeNull();
        example.Id.ShouldBe("train-1");
    }

    [Fact]
    public void RepeatedFieldKeepsLastValue()
    {
        string json = Record(extra: "\"label\":7,");

        codec.TryDecode(Encoding.UTF8.GetBytes(json), out LabeledExample? example, out string error).ShouldBeTrue(error);

        example.ShouldNotBeNull();
        example.Label.ShouldBe(0);
    }

    [Fact]
    public void LeadingZeroFeatureRejected()
    {
        string features = Features(FeatureCount - 1)[..^1] + ",007]";
        ShouldReject(Record(features: features), "malformed JSON");
    }

    [Fact]
    public void LargeTaskNumberAccepted()
    {
        codec.TryDecode(Encoding.UTF8.GetBytes(Record(task: "2147483647")), out LabeledExample? example, out string error).ShouldBeTrue(error);

        example.ShouldNotBeNull();
        example.Task.ShouldBe(int.MaxValue);
    }

    [Fact]
    public void TaskAboveMaximumRejected()
    {
        var bounded = new ExampleRecordCodec(FeatureCount, ClassCount) { MaxTask = 1000 };
        byte[][] records =
        [
            Encoding.UTF8.GetBytes(Record(task: "2147483647")),
            ExampleRecordCodec.Encode("train-1", task: int.MaxValue, label: 0, new byte[FeatureCount]),
            BinaryExampleRecord.Encode("train-1", task: int.MaxValue, label: 0, new byte[FeatureCount]),
        ];

        foreach (byte[] record in records)
        {
            bounded.TryDecode(record, out LabeledExample? example, out string error).ShouldBeFalse();
            example.ShouldBeNull();
            error.ShouldBe("field 'task' is 2147483647; the maximum is 1000 (Learner:MaxTask)");
        }

        bounded.TryDecode(Encoding.UTF8.GetBytes(Record(task: "1000")), out _, out string atLimitError).ShouldBeTrue(atLimitError);
    }

    [Theory]
    [InlineData("99999999999")]
    [InlineData("2147483648")]
    [InlineData("1e30")]
    [InlineData("1E+400")]
    public void TaskBeyondInt32NamesMaximum(string written)
    {
        var bounded = new ExampleRecordCodec(FeatureCount, ClassCount) { MaxTask = 1000 };

        bounded.TryDecode(Encoding.UTF8.GetBytes(Record(task: written)), out LabeledExample? example, out string error).ShouldBeFalse();

        example.ShouldBeNull();
        error.ShouldBe($"field 'task' is {written}; the maximum is 1000 (Learner:MaxTask)");
    }

    [Theory]
    [InlineData("99999999999.5", "the number 99999999999.5")]
    [InlineData("-99999999999", "the number -99999999999")]
    public void FractionOrNegativeLargeTaskRejected(string written, string expectedValue)
    {
        var bounded = new ExampleRecordCodec(FeatureCount, ClassCount) { MaxTask = 1000 };

        bounded.TryDecode(Encoding.UTF8.GetBytes(Record(task: written)), out _, out string error).ShouldBeFalse();

        error.ShouldBe($"field 'task' is {expectedValue}; expected a JSON integer of at least 1");
    }

    [Theory]
    [InlineData("12", "field 'label' is 12, outside 0..9")]
    [InlineData("-1", "field 'label' is -1, outside 0..9")]
    [InlineData(null, "field 'label' is missing; expected a JSON integer from 0 to 9")]
    public void LabelReasonNamesValue(string? label, string reason)
    {
        codec.TryDecode(Encoding.UTF8.GetBytes(Record(label: label)), out LabeledExample? example, out string error).ShouldBeFalse();

        example.ShouldBeNull();
        error.ShouldBe(reason);
    }

    [Fact]
    public void MalformedJsonRejected()
    {
        ShouldReject("{\"id\":\"a\",\"task\":1,", "malformed JSON");
    }

    [Fact]
    public void UnclosedObjectRejected()
    {
        string json = Record();
        ShouldReject(json[..^1], "malformed JSON");
    }

    [Fact]
    public void TrailingContentRejected()
    {
        ShouldReject(Record() + "{}", "JSON");
    }

    [Fact]
    public void NonObjectRejected()
    {
        ShouldReject("[1,2]", "object");
    }

    [Theory]
    [InlineData("\"\\ud800\"", "")]
    [InlineData("\"a\\udc00\"", "")]
    [InlineData("\"a\"", "\"\\ud800\":1,")]
    public void LoneSurrogateEscapeRejected(string id, string extra)
    {
        // A \u escape of half a surrogate pair is valid JSON syntax but no valid string, so reading it must not throw.
        ShouldReject(Record(id: id, extra: extra), "malformed JSON");
    }

    [Theory]
    [InlineData("id", "[\"a\"]")]
    [InlineData("id", "{\"task\":1}")]
    [InlineData("task", "{\"x\":1}")]
    [InlineData("task", "[1]")]
    [InlineData("label", "[0]")]
    [InlineData("label", "{\"label\":0}")]
    public void ArrayOrObjectFieldNamedInError(string field, string value)
    {
        string json = field switch
        {
            "id" => Record(id: value),
            "task" => Record(task: value),
            _ => Record(label: value),
        };

        ShouldReject(json, $"field '{field}'");
    }

    [Fact]
    public void MissingIdRejected()
    {
        ShouldReject(Record(id: null), "'id'");
    }

    [Fact]
    public void EmptyIdRejected()
    {
        ShouldReject(Record(id: "\"\""), "'id'");
    }

    [Fact]
    public void NumericIdRejected()
    {
        ShouldReject(Record(id: "42"), "'id'");
    }

    [Fact]
    public void MissingTaskRejected()
    {
        ShouldReject(Record(task: null), "'task'");
    }

    [Fact]
    public void ZeroTaskRejected()
    {
        ShouldReject(Record(task: "0"), "'task'");
    }

    [Fact]
    public void MissingLabelRejected()
    {
        ShouldReject(Record(label: null), "'label'");
    }

    [Fact]
    public void LabelTenRejected()
    {
        ShouldReject(Record(label: "10"), "'label'");
    }

    [Fact]
    public void NegativeLabelRejected()
    {
        ShouldReject(Record(label: "-1"), "'label'");
    }

    [Fact]
    public void FractionalLabelRejected()
    {
        ShouldReject(Record(label: "1.5"), "'label'");
    }

    [Theory]
    [InlineData("label", "\"1\"", "field 'label' is a JSON string (\"1\"); expected a JSON integer from 0 to 9")]
    [InlineData("label", "1.5", "field 'label' is the number 1.5; expected a JSON integer from 0 to 9")]
    [InlineData("label", "true", "field 'label' is a JSON boolean; expected a JSON integer from 0 to 9")]
    [InlineData("label", "null", "field 'label' is null; expected a JSON integer from 0 to 9")]
    [InlineData("label", "[0]", "field 'label' is a JSON array; expected a JSON integer from 0 to 9")]
    [InlineData("task", "\"2\"", "field 'task' is a JSON string (\"2\"); expected a JSON integer of at least 1")]
    [InlineData("task", "3000000000", "field 'task' is 3000000000; the maximum is 2147483647 (Learner:MaxTask)")]
    [InlineData("task", "0", "field 'task' is 0; expected a JSON integer of at least 1")]
    [InlineData("label", "\"a\\nb\"", "field 'label' is a JSON string (\"a\\nb\"); expected a JSON integer from 0 to 9")]
    [InlineData("id", "42", "field 'id' is the number 42; expected a non-empty string")]
    [InlineData("id", "\"\"", "field 'id' is an empty string; expected a non-empty string")]
    [InlineData("features", "\"pixels\"", "field 'features' is a JSON string (\"pixels\"); expected an array of numbers")]
    [InlineData("features", "[\"1\"]", "field 'features' item 0 is a JSON string (\"1\"); expected a number")]
    public void WrongTypeReasonNamesValue(string field, string value, string reason)
    {
        string json = field switch
        {
            "id" => Record(id: value),
            "task" => Record(task: value),
            "label" => Record(label: value),
            _ => Record(features: value),
        };

        codec.TryDecode(Encoding.UTF8.GetBytes(json), out LabeledExample? example, out string error).ShouldBeFalse();

        example.ShouldBeNull();
        error.ShouldBe(reason);
    }

    [Fact]
    public void LongStringValueShortened()
    {
        string value = "\"" + new string('7', 50) + "\\n\"";

        codec.TryDecode(Encoding.UTF8.GetBytes(Record(label: value)), out _, out string error).ShouldBeFalse();

        error.ShouldBe($"field 'label' is a JSON string (\"{new string('7', 40)}...\"); expected a JSON integer from 0 to 9");
    }

    [Fact]
    public void MissingFeaturesRejected()
    {
        ShouldReject(Record(features: null), "'features'");
    }

    [Fact]
    public void FeaturesNotArrayRejected()
    {
        ShouldReject(Record(features: "\"pixels\""), "'features'");
    }

    [Theory]
    [InlineData(783)]
    [InlineData(785)]
    [InlineData(0)]
    public void WrongFeatureCountRejected(int count)
    {
        ShouldReject(Record(features: Features(count)), "'features'");
    }

    [Fact]
    public void NonNumberFeatureRejected()
    {
        string features = "[\"x\"," + Features(FeatureCount - 1)[1..];
        ShouldReject(Record(features: features), "'features' item 0");
    }

    [Fact]
    public void OverflowingFeatureRejected()
    {
        string features = Features(FeatureCount - 1)[..^1] + ",1e39]";
        ShouldReject(Record(features: features), "field 'features' item 783 is 1E+39, outside the FP32 range; the maximum absolute value is 3.4028235E+38");
    }

    [Theory]
    [InlineData("1e300", "1E+300")]
    [InlineData("-1e300", "-1E+300")]
    [InlineData("1e400", "1e400")]
    public void FeatureOutsideFloatRangeNamesLimit(string written, string expectedValue)
    {
        var bounded = new ExampleRecordCodec(FeatureCount, ClassCount) { MaxAbsFeatureValue = 1e6f };
        string features = Features(FeatureCount - 1)[..^1] + "," + written + "]";

        bounded.TryDecode(Encoding.UTF8.GetBytes(Record(features: features)), out LabeledExample? example, out string error).ShouldBeFalse();

        example.ShouldBeNull();
        error.ShouldBe($"field 'features' item 783 is {expectedValue}, outside the FP32 range; the maximum absolute value is 1000000 (Learner:MaxAbsFeatureValue)");
    }

    [Fact]
    public void FeatureAboveMaximumRejected()
    {
        var bounded = new ExampleRecordCodec(FeatureCount, ClassCount) { MaxAbsFeatureValue = 1e6f };
        float[] features = new float[FeatureCount];
        features[7] = -3e38f;
        byte[][] records =
        [
            Encoding.UTF8.GetBytes(Record(features: Features(FeatureCount - 1)[..^1] + ",-3e38]")),
            ExampleRecordCodec.Encode("train-1", task: 1, label: 0, features),
            BinaryExampleRecord.Encode("train-1", task: 1, label: 0, features),
        ];
        string[] expectedItems = ["item 783 is -3E+38", "item 7 is -3E+38", "item 7 is -3E+38"];

        for (int index = 0; index < records.Length; index++)
        {
            bounded.TryDecode(records[index], out LabeledExample? example, out string error).ShouldBeFalse();
            example.ShouldBeNull();
            error.ShouldBe($"field 'features' {expectedItems[index]}; the maximum absolute value is 1000000 (Learner:MaxAbsFeatureValue)");
        }
    }

    [Fact]
    public void FeatureAtMaximumAccepted()
    {
        var bounded = new ExampleRecordCodec(FeatureCount, ClassCount) { MaxAbsFeatureValue = 1e6f };
        float[] features = new float[FeatureCount];
        features[0] = 1e6f;
        features[1] = -1e6f;

        bounded.TryDecode(ExampleRecordCodec.Encode("train-1", task: 1, label: 0, features), out _, out string error).ShouldBeTrue(error);
    }

    [Theory]
    [InlineData("1000000.0001", "1000000.0001")]
    [InlineData("-1000000.0001", "-1000000.0001")]
    [InlineData("1.0000000000001e6", "1000000.0000001")]
    public void JsonFeatureJustOverMaximumRejected(string written, string expectedValue)
    {
        var bounded = new ExampleRecordCodec(FeatureCount, ClassCount) { MaxAbsFeatureValue = 1e6f };
        string features = Features(FeatureCount - 1)[..^1] + "," + written + "]";

        bounded.TryDecode(Encoding.UTF8.GetBytes(Record(features: features)), out LabeledExample? example, out string error).ShouldBeFalse();

        example.ShouldBeNull();
        error.ShouldBe($"field 'features' item 783 is {expectedValue}; the maximum absolute value is 1000000 (Learner:MaxAbsFeatureValue)");
    }

    [Theory]
    [InlineData("1000000")]
    [InlineData("-1e6")]
    [InlineData("1000000.000")]
    public void JsonFeatureAtMaximumAccepted(string written)
    {
        var bounded = new ExampleRecordCodec(FeatureCount, ClassCount) { MaxAbsFeatureValue = 1e6f };
        string features = Features(FeatureCount - 1)[..^1] + "," + written + "]";

        bool decoded = bounded.TryDecode(Encoding.UTF8.GetBytes(Record(features: features)), out LabeledExample? example, out string error);

        decoded.ShouldBeTrue(error);
        example.ShouldNotBeNull();
        MathF.Abs(example.Features[783]).ShouldBe(1e6f);
    }

    [Fact]
    public void BinaryFeatureJustOverMaximumRejected()
    {
        var bounded = new ExampleRecordCodec(FeatureCount, ClassCount) { MaxAbsFeatureValue = 1e6f };
        float[] features = new float[FeatureCount];
        features[0] = 1e6f;
        features[1] = float.BitIncrement(1e6f);

        bounded.TryDecode(BinaryExampleRecord.Encode("train-1", task: 1, label: 0, features), out LabeledExample? example, out string error).ShouldBeFalse();

        example.ShouldBeNull();
        error.ShouldBe("field 'features' item 1 is 1000000.06; the maximum absolute value is 1000000 (Learner:MaxAbsFeatureValue)");
    }

    [Fact]
    public void OversizedRecordRejected()
    {
        var small = new ExampleRecordCodec(FeatureCount, ClassCount, maxRecordBytes: 1_000);
        byte[] record = Encoding.UTF8.GetBytes(Record());
        record.Length.ShouldBeGreaterThan(1_000);

        small.TryDecode(record, out LabeledExample? example, out string error).ShouldBeFalse();
        example.ShouldBeNull();
        error.ShouldContain("limit is 1000");
    }

    [Fact]
    public void RecordAtLimitAccepted()
    {
        byte[] record = Encoding.UTF8.GetBytes(Record());
        var exact = new ExampleRecordCodec(FeatureCount, ClassCount, maxRecordBytes: record.Length);

        exact.TryDecode(record, out _, out string error).ShouldBeTrue(error);
    }

    private void ShouldReject(string json, string expectedReason)
    {
        bool decoded = codec.TryDecode(Encoding.UTF8.GetBytes(json), out LabeledExample? example, out string error);

        decoded.ShouldBeFalse();
        example.ShouldBeNull();
        error.ShouldContain(expectedReason);
    }

    // Builds a record field by field. A null argument leaves that field out.
    private static string Record(
        string? id = "\"train-00001\"",
        string? task = "1",
        string? label = "0",
        string? features = "default",
        string extra = "")
    {
        var fields = new List<string>();
        if (id is not null)
        {
            fields.Add("\"id\":" + id);
        }

        if (task is not null)
        {
            fields.Add("\"task\":" + task);
        }

        if (label is not null)
        {
            fields.Add("\"label\":" + label);
        }

        if (features is not null)
        {
            fields.Add("\"features\":" + (features == "default" ? Features(FeatureCount) : features));
        }

        return "{" + extra + string.Join(",", fields) + "}";
    }

    private static string Features(int count) => "[" + string.Join(",", Enumerable.Range(0, count).Select(index => index % 256)) + "]";
}
