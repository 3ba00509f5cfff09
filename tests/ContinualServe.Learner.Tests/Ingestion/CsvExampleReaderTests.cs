using System.Diagnostics;
using System.Text;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Ingestion;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Ingestion;

public sealed class CsvExampleReaderTests : IDisposable
{
    private const string Header = "id,task,label,f0,f1,f2,f3\n";

    private readonly TemporaryDirectory directory = new("continualserve-csv-");
    private readonly ExampleRecordCodec codec = new(featureCount: 4, classCount: 3);

    public void Dispose() => directory.Dispose();

    [Fact]
    public void ValidFileReadsEveryExample()
    {
        // A byte order mark, CRLF line endings, quoted fields, spaces around numbers and no final line break.
        string path = Write("valid.csv", "\uFEFFid,task,label,f0,f1,f2,f3\r\n"
            + "a-1,1,0,0,12,255,7\r\n"
            + "\"b,\"\"2\"\"\",2, 2 ,0.5,-1e2, 3.25 ,\"4\"\r\n"
            + "c-3,7,1,0,0,0,0");

        List<LabeledExample> examples = ExampleFileReader.ReadAll(path, ExampleFileFormat.Csv, codec).ToList();

        examples.Count.ShouldBe(3);
        examples[0].Id.ShouldBe("a-1");
        examples[0].Task.ShouldBe(1);
        examples[0].Label.ShouldBe(0);
        examples[0].Features.ShouldBe([0f, 12f, 255f, 7f]);
        examples[1].Id.ShouldBe("b,\"2\"");
        examples[1].Task.ShouldBe(2);
        examples[1].Label.ShouldBe(2);
        examples[1].Features.ShouldBe([0.5f, -100f, 3.25f, 4f]);
        examples[2].Id.ShouldBe("c-3");
        examples[2].Task.ShouldBe(7);
        ExampleFileReader.Validate(path, ExampleFileFormat.Csv, codec).ShouldBe(3);
    }

    [Fact]
    public void ColumnsInAnyOrderWithoutId()
    {
        string path = Write("shirts.csv", "pixel1,Label,pixel2,TASK,pixel3,pixel4\n1,2,3,4,5,6\n10,0,30,1,50,60\n");

        using ExampleFileReader reader = ExampleFileReader.Open(path, ExampleFileFormat.Csv, codec);

        reader.TryRead(out LabeledExample? first).ShouldBeTrue();
        reader.LineNumber.ShouldBe(2);
        first.Id.ShouldBe("shirts-1");
        first.Task.ShouldBe(4);
        first.Label.ShouldBe(2);
        first.Features.ShouldBe([1f, 3f, 5f, 6f]);
        reader.TryRead(out LabeledExample? second).ShouldBeTrue();
        reader.LineNumber.ShouldBe(3);
        second.Id.ShouldBe("shirts-2");
        second.Features.ShouldBe([10f, 30f, 50f, 60f]);
        reader.TryRead(out _).ShouldBeFalse();
    }

    [Theory]
    [InlineData(Header + "a,1,3,0,0,0,0\n", 2, "column 'label' is '3'; expected an integer from 0 to 2")]
    [InlineData(Header + "a,1,0,0,0,0,0\nb,1,-1,0,0,0,0\n", 3, "column 'label' is '-1'; expected an integer from 0 to 2")]
    [InlineData(Header + "a,1,1.5,0,0,0,0\n", 2, "column 'label' is '1.5'; expected an integer")]
    [InlineData(Header + "a,0,1,0,0,0,0\n", 2, "column 'task' is '0'; expected a positive integer")]
    [InlineData(Header + "a,,1,0,0,0,0\n", 2, "column 'task' is ''; expected a positive integer")]
    [InlineData(Header + "a,1,1,0,0,abc,0\n", 2, "column 'f2' is 'abc'; expected a finite number")]
    [InlineData(Header + "a,1,1,0,NaN,0,0\n", 2, "column 'f1' is 'NaN'; expected a finite number")]
    [InlineData(Header + "a,1,1,0,1e39,0,0\n", 2, "column 'f1' is '1e39', outside the FP32 range; the maximum absolute value is 3.4028235E+38")]
    [InlineData(Header + "a,1,1,0,-Infinity,0,0\n", 2, "column 'f1' is '-Infinity'; expected a finite number")]
    [InlineData(Header + "a,1,1,0,\"0,5\",0,0\n", 2, "column 'f1' is '0,5'; expected a finite number")]
    [InlineData(Header + "a,1,1,0,0,0\n", 2, "the row has 6 fields but the header has 7 columns")]
    [InlineData(Header + "a,1,1,0,0,0,0,\n", 2, "the row has 8 fields but the header has 7 columns")]
    [InlineData(Header + "a,1,1,0,0,0,0\nb,1,1,0,0,0,0\na,1,1,0,0,0,0\n", 4, "field 'id': 'a' repeats the id on line 2")]
    [InlineData(Header + ",1,1,0,0,0,0\n", 2, "column 'id' is empty")]
    [InlineData(Header + "a\tb,1,1,0,0,0,0\n", 2, "column 'id' contains the character U+0009 at index 1; ids may not contain control characters")]
    [InlineData(Header + "a,1,1,0,0,0,0\n\nb,1,1,0,0,0,0\n", 3, "the line is blank")]
    [InlineData(Header + "a,1,1,0,0,0,0\n \n", 3, "the line is blank")]
    [InlineData(Header + "\"a,1,1,0,0,0,0\n", 2, "column 'id' has an opening quote but no closing quote")]
    [InlineData(Header + "a\"b,1,1,0,0,0,0\n", 2, "column 'id' contains a quote but does not start with one")]
    [InlineData(Header + "\"a\"b,1,1,0,0,0,0\n", 2, "column 'id' has characters after its closing quote")]
    [InlineData("id,task,f0,f1,f2,f3\na,1,0,0,0,0\n", 1, "the header has no 'label' column")]
    [InlineData("id,label,f0,f1,f2,f3\na,1,0,0,0,0\n", 1, "the header has no 'task' column")]
    [InlineData("id,task,label,f0,f1,f2\na,1,1,0,0,0\n", 1, "the header has 3 feature columns; expected 4, the feature count given to produce with --features")]
    [InlineData("id,task,label,f0,f1,f2,f3,f4\na,1,1,0,0,0,0,0\n", 1, "the header has 5 feature columns; expected 4")]
    [InlineData("id,task,label,f0,F0,f2,f3\na,1,1,0,0,0,0\n", 1, "header column 'F0' appears more than once")]
    [InlineData("id,task,label,f0,,f2,f3\na,1,1,0,0,0,0\n", 1, "header column 5 has no name")]
    [InlineData("\nid,task,label,f0,f1,f2,f3\n", 1, "the line is blank")]
    [InlineData("", 0, "the file is empty")]
    [InlineData(Header, 0, "the file contains no examples")]
    public void InvalidRowNamesLineAndField(string content, long line, string problem)
    {
        string path = Write("invalid.csv", content);

        ExampleFileException exception = Should.Throw<ExampleFileException>(() => ExampleFileReader.Validate(path, ExampleFileFormat.Csv, codec));

        exception.FilePath.ShouldBe(path);
        exception.LineNumber.ShouldBe(line);
        exception.Problem.ShouldContain(problem);
        exception.Message.ShouldStartWith(line > 0 ? $"{path} line {line}: " : $"{path}: ");
    }

    [Theory]
    [InlineData(Header + "a,1,1,0,0,0,0\nb,1001,1,0,0,0,0\n", 3, "field 'task' is 1001; the maximum is 1000 (Learner:MaxTask)")]
    [InlineData(Header + "a,1,1,0,-2e6,0,0\n", 2, "field 'features' item 1 is -2000000; the maximum absolute value is 1000000 (Learner:MaxAbsFeatureValue)")]
    [InlineData(Header + "a,1,1,0,1e300,0,0\n", 2, "column 'f1' is '1e300', outside the FP32 range; the maximum absolute value is 1000000 (Learner:MaxAbsFeatureValue)")]
    public void RowOverLearnerLimitsRejected(string content, long line, string problem)
    {
        var bounded = new ExampleRecordCodec(featureCount: 4, classCount: 3) { MaxTask = 1000, MaxAbsFeatureValue = 1e6f };
        string path = Write("over-limit.csv", content);

        ExampleFileException exception = Should.Throw<ExampleFileException>(() => ExampleFileReader.Validate(path, ExampleFileFormat.Csv, bounded));

        exception.LineNumber.ShouldBe(line);
        exception.Problem.ShouldBe(problem);
    }

    [Fact]
    public void RowAtLearnerLimitsAccepted()
    {
        var bounded = new ExampleRecordCodec(featureCount: 4, classCount: 3) { MaxTask = 1000, MaxAbsFeatureValue = 1e6f };
        string path = Write("at-limit.csv", Header + "a,1000,1,1e6,-1e6,0,0\n");

        ExampleFileReader.Validate(path, ExampleFileFormat.Csv, bounded).ShouldBe(1);
    }

    [Fact]
    public void InvalidUtf8Rejected()
    {
        string path = Path.Combine(directory.Path, "latin1.csv");
        byte[] content = [.. Encoding.ASCII.GetBytes(Header + "a,1,1,0,0,0,0\ncaf"), 0xE9, .. Encoding.ASCII.GetBytes(",1,1,0,0,0,0\n")];
        File.WriteAllBytes(path, content);

        ExampleFileException exception = Should.Throw<ExampleFileException>(() => ExampleFileReader.Validate(path, ExampleFileFormat.Csv, codec));

        exception.LineNumber.ShouldBe(3);
        exception.Problem.ShouldBe("the line is not valid UTF-8");
    }

    [Theory]
    [InlineData("a,1,1,0,0,0,7\0\0", 14)]
    [InlineData("a,1\0,1,0,0,0,7", 4)]
    [InlineData("a\0b,1,1,0,0,0,7", 2)]
    public void NulByteRejected(string row, int position)
    {
        // .NET number parsing ignores trailing NUL characters, so without this check "7\0\0" would read as 7.
        string path = Write("nul.csv", Header + "a-0,1,1,0,0,0,0\n" + row + "\n");

        ExampleFileException exception = Should.Throw<ExampleFileException>(() => ExampleFileReader.Validate(path, ExampleFileFormat.Csv, codec));

        exception.LineNumber.ShouldBe(3);
        exception.Problem.ShouldBe($"byte {position} of the line is a NUL byte (0x00), which no valid line contains");
    }

    [Fact]
    public void CarriageReturnInsideLineRejected()
    {
        // Classic Mac OS line endings (CR only) make the whole file one line.
        string path = Write("mac.csv", "id,task,label,f0,f1,f2,f3\ra,1,1,0,0,0,0\rb,1,1,0,0,0,0\r");

        ExampleFileException exception = Should.Throw<ExampleFileException>(() => ExampleFileReader.Validate(path, ExampleFileFormat.Csv, codec));

        exception.LineNumber.ShouldBe(1);
        exception.Problem.ShouldBe("the line contains a carriage return (CR) before its end; end lines with LF or CRLF");
    }

    [Fact(Timeout = 10_000)]
    public async Task PipeRejected()
    {
        // produce validates a file in a first pass and sends it in a second, and a pipe has nothing left for the second.
        string path = Path.Combine(directory.Path, "pipe.csv");
        using (Process mkfifo = Process.Start("mkfifo", [path]))
        {
            mkfifo.WaitForExit(5_000).ShouldBeTrue("mkfifo exited within 5 s");
            mkfifo.ExitCode.ShouldBe(0);
        }

        // Opening a FIFO blocks until the other end opens, so the writer runs on another thread.
        Task writer = Task.Run(() =>
        {
            try
            {
                File.WriteAllText(path, Header + "a,1,1,0,0,0,0\n");
            }
            catch (IOException)
            {
                // The reader may close the pipe before the writer is done.
            }
        });

        ExampleFileException exception = await Should.ThrowAsync<ExampleFileException>(
            () => Task.Run(() => ExampleFileReader.Validate(path, ExampleFileFormat.Csv, codec)));

        exception.LineNumber.ShouldBe(0);
        exception.Problem.ShouldStartWith("the file is a pipe or another stream that cannot be read twice");
        await writer.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void LongLineRejected()
    {
        var smallRecords = new ExampleRecordCodec(featureCount: 4, classCount: 3, maxRecordBytes: 100);
        string path = Write("long.csv", Header + "a,1,1,0,0,0,0\n" + new string('b', 200) + ",1,1,0,0,0,0\n");

        ExampleFileException exception = Should.Throw<ExampleFileException>(() => ExampleFileReader.Validate(path, ExampleFileFormat.Csv, smallRecords));

        exception.LineNumber.ShouldBe(3);
        exception.Problem.ShouldBe("the line is longer than 100 bytes");
    }

    [Fact]
    public void RecordOverLimitRejected()
    {
        // Line 3 has 52 bytes, under the limit, but its JSON record has about 90.
        var smallRecords = new ExampleRecordCodec(featureCount: 4, classCount: 3, maxRecordBytes: 80);
        string path = Write("record.csv", Header + "a,1,1,0,0,0,0\n" + new string('b', 40) + ",1,1,0,0,0,0\n");

        ExampleFileException exception = Should.Throw<ExampleFileException>(() => ExampleFileReader.Validate(path, ExampleFileFormat.Csv, smallRecords));

        exception.LineNumber.ShouldBe(3);
        exception.Problem.ShouldStartWith("the example encodes to a ");
        exception.Problem.ShouldEndWith("-byte record; the limit is 80");
    }

    [Fact]
    public void MissingFileThrowsFileNotFound()
    {
        Should.Throw<FileNotFoundException>(() => ExampleFileReader.Validate(Path.Combine(directory.Path, "absent.csv"), ExampleFileFormat.Csv, codec));
    }

    private string Write(string name, string content)
    {
        string path = Path.Combine(directory.Path, name);
        File.WriteAllText(path, content, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
        return path;
    }
}
