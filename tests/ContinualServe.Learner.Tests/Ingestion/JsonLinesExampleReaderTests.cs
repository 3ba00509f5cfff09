using System.Text;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Ingestion;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Ingestion;

public sealed class JsonLinesExampleReaderTests : IDisposable
{
    private const string Valid = "{\"id\":\"a\",\"task\":1,\"label\":0,\"features\":[0,1,2,3]}\n";

    private readonly TemporaryDirectory directory = new("continualserve-jsonl-");
    private readonly ExampleRecordCodec codec = new(featureCount: 4, classCount: 3);

    public void Dispose() => directory.Dispose();

    [Fact]
    public void ValidFileReadsEveryExample()
    {
        // The canonical form, then whitespace, another field order, float features, an unknown field and CRLF.
        string path = Write("valid.jsonl", "\uFEFF{\"id\":\"a-1\",\"task\":1,\"label\":0,\"features\":[0,12,255,7]}\r\n"
            + "{ \"features\": [0.5, -1e2, 3.25, 4], \"label\": 2, \"source\": \"camera\", \"task\": 2, \"id\": \"b\\u002d2\" }\r\n"
            + "{\"id\":\"c-3\",\"task\":7,\"label\":1,\"features\":[0,0,0,0]}");

        using ExampleFileReader reader = ExampleFileReader.Open(path, ExampleFileFormat.JsonLines, codec);
        var examples = new List<LabeledExample>();
        var lines = new List<long>();
        while (reader.TryRead(out LabeledExample? example))
        {
            examples.Add(example);
            lines.Add(reader.LineNumber);
        }

        examples.Count.ShouldBe(3);
        lines.ShouldBe([1L, 2L, 3L]);
        examples[0].Id.ShouldBe("a-1");
        examples[0].Task.ShouldBe(1);
        examples[0].Label.ShouldBe(0);
        examples[0].Features.ShouldBe([0f, 12f, 255f, 7f]);
        examples[1].Id.ShouldBe("b-2");
        examples[1].Task.ShouldBe(2);
        examples[1].Label.ShouldBe(2);
        examples[1].Features.ShouldBe([0.5f, -100f, 3.25f, 4f]);
        examples[2].Id.ShouldBe("c-3");
        examples[2].Task.ShouldBe(7);
        ExampleFileReader.Validate(path, ExampleFileFormat.JsonLines, codec).ShouldBe(3);
    }

    [Theory]
    [InlineData(Valid + "{\"id\":\"b\",\"task\":1,\"label\":3,\"features\":[0,1,2,3]}\n", 2, "field 'label' is 3, outside 0..2")]
    [InlineData(Valid + "{\"id\":\"b\",\"task\":0,\"label\":1,\"features\":[0,1,2,3]}\n", 2, "field 'task' is 0; expected a JSON integer of at least 1")]
    [InlineData(Valid + "{\"id\":\"b\",\"task\":1.5,\"label\":1,\"features\":[0,1,2,3]}\n", 2, "field 'task' is the number 1.5; expected a JSON integer of at least 1")]
    [InlineData(Valid + "{\"task\":1,\"label\":1,\"features\":[0,1,2,3]}\n", 2, "field 'id' is missing; expected a non-empty string")]
    [InlineData(Valid + "{\"id\":\"b\",\"task\":1,\"label\":1,\"features\":[0,1,2]}\n", 2, "field 'features' has 3 values; expected 4")]
    [InlineData(Valid + "{\"id\":\"b\",\"task\":1,\"label\":1,\"features\":[0,1,2,3,4]}\n", 2, "field 'features' has more than the expected 4 values")]
    [InlineData(Valid + "{\"id\":\"b\",\"task\":1,\"label\":1,\"features\":[0,\"1\",2,3]}\n", 2, "field 'features' item 1 is a JSON string (\"1\"); expected a number")]
    [InlineData(Valid + "{\"id\":\"b\",\"task\":1,\"label\":1}\n", 2, "field 'features' is missing")]
    [InlineData(Valid + "{\"id\":\"b\",\"task\":1,\n", 2, "malformed JSON")]
    [InlineData(Valid + "[1,2]\n", 2, "record must be a JSON object")]
    [InlineData(Valid + "{\"id\":\"evil\\nfake-id-line\",\"task\":1,\"label\":1,\"features\":[0,1,2,3]}\n", 2, "field 'id' contains the character U+000A at index 4")]
    [InlineData(Valid + "{\"id\":\"nul\\u0000\",\"task\":1,\"label\":1,\"features\":[0,1,2,3]}\n", 2, "field 'id' contains the character U+0000 at index 3")]
    [InlineData(Valid + "{\"id\":\"b\\u2028c\",\"task\":1,\"label\":1,\"features\":[0,1,2,3]}\n", 2, "field 'id' contains the character U+2028 at index 1")]
    [InlineData(Valid + Valid, 2, "field 'id': 'a' repeats the id on line 1")]
    [InlineData(Valid + "\n" + Valid, 2, "the line is blank")]
    [InlineData(Valid + "\n", 2, "the line is blank")]
    [InlineData("", 0, "the file contains no examples")]
    public void InvalidLineNamesLineAndField(string content, long line, string problem)
    {
        string path = Write("invalid.jsonl", content);

        ExampleFileException exception = Should.Throw<ExampleFileException>(() => ExampleFileReader.Validate(path, ExampleFileFormat.JsonLines, codec));

        exception.FilePath.ShouldBe(path);
        exception.LineNumber.ShouldBe(line);
        exception.Problem.ShouldContain(problem);
        exception.Message.ShouldStartWith(line > 0 ? $"{path} line {line}: " : $"{path}: ");
    }

    [Fact]
    public void InvalidUtf8Rejected()
    {
        string path = Path.Combine(directory.Path, "latin1.jsonl");
        byte[] content = [.. Encoding.ASCII.GetBytes(Valid + "{\"id\":\"caf"), 0xE9, .. Encoding.ASCII.GetBytes("\",\"task\":1,\"label\":0,\"features\":[0,1,2,3]}\n")];
        File.WriteAllBytes(path, content);

        ExampleFileException exception = Should.Throw<ExampleFileException>(() => ExampleFileReader.Validate(path, ExampleFileFormat.JsonLines, codec));

        exception.LineNumber.ShouldBe(2);
        exception.Problem.ShouldBe("the line is not valid UTF-8");
    }

    [Fact]
    public void LongLineRejected()
    {
        var smallRecords = new ExampleRecordCodec(featureCount: 4, classCount: 3, maxRecordBytes: 60);
        string path = Write("long.jsonl", Valid + "{\"id\":\"" + new string('b', 60) + "\",\"task\":1,\"label\":0,\"features\":[0,1,2,3]}\n");

        ExampleFileException exception = Should.Throw<ExampleFileException>(() => ExampleFileReader.Validate(path, ExampleFileFormat.JsonLines, smallRecords));

        exception.LineNumber.ShouldBe(2);
        exception.Problem.ShouldBe("the line is longer than 60 bytes");
    }

    [Fact]
    public void IdAndRecordOverMessageLimitRejected()
    {
        // The id is the record's key and also inside the record, so it counts twice toward the producer's limit.
        string Line(int idLength) => "{\"id\":\"" + new string('x', idLength) + "\",\"task\":1,\"label\":0,\"features\":[0,1,2,30]}";
        int fitting = (ExampleProducer.MaxKeyAndValueBytes - Line(0).Length) / 2;
        string atLimit = Write("at-limit.jsonl", Line(fitting) + "\n");
        (fitting + Line(fitting).Length).ShouldBe(ExampleProducer.MaxKeyAndValueBytes);
        string overLimit = Write("over-limit.jsonl", Valid + Line(fitting + 1) + "\n");

        ExampleFileReader.Validate(atLimit, ExampleFileFormat.JsonLines, codec).ShouldBe(1);
        ExampleFileException exception = Should.Throw<ExampleFileException>(() => ExampleFileReader.Validate(overLimit, ExampleFileFormat.JsonLines, codec));

        exception.LineNumber.ShouldBe(2);
        exception.Problem.ShouldStartWith($"the id ({fitting + 1} bytes) and the record ({Line(fitting + 1).Length} bytes) make a Kafka message of ");
        exception.Problem.ShouldContain($"the limit is {ExampleProducer.MaxKeyAndValueBytes}");
    }

    [Fact]
    public void LinesLongerThanBufferRead()
    {
        // 20,000 features such as 19999.5 make lines of about 150 KB, longer than the reader's first 64 KiB buffer.
        var wide = new ExampleRecordCodec(featureCount: 20_000, classCount: 3);
        float[] features = Enumerable.Range(0, 20_000).Select(index => index + 0.5f).ToArray();
        string path = Path.Combine(directory.Path, "wide.jsonl");
        using (FileStream stream = File.Create(path))
        {
            for (int index = 0; index < 3; index++)
            {
                stream.Write(ExampleRecordCodec.Encode("w-" + index, 1, index, features));
                stream.WriteByte((byte)'\n');
            }
        }

        List<LabeledExample> examples = ExampleFileReader.ReadAll(path, ExampleFileFormat.JsonLines, wide).ToList();

        examples.Select(example => example.Id).ShouldBe(["w-0", "w-1", "w-2"]);
        examples.Select(example => example.Label).ShouldBe([0, 1, 2]);
        examples.ShouldAllBe(example => example.Features.SequenceEqual(features));
    }

    private string Write(string name, string content)
    {
        string path = Path.Combine(directory.Path, name);
        File.WriteAllText(path, content, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
        return path;
    }
}
