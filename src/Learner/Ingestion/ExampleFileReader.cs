using System.Diagnostics.CodeAnalysis;
using System.Text;
using System.Text.Unicode;
using ContinualServe.Learner.Data;

namespace ContinualServe.Learner.Ingestion;

/// <summary>Format of a file of labeled examples.</summary>
public enum ExampleFileFormat
{
    /// <summary>One stream record per line, in the JSON format of <see cref="ExampleRecordCodec"/>.</summary>
    JsonLines,

    /// <summary>A header row, then one example per row, with the columns that <see cref="CsvExampleReader"/> describes.</summary>
    Csv,
}

/// <summary>
/// Streaming reader of a file of labeled examples. Every example is checked against the codec's feature count,
/// class count and record size, and the first invalid line raises <see cref="ExampleFileException"/>. Blank
/// lines, lines that are not valid UTF-8 and lines with a NUL byte are invalid in every format.
/// </summary>
public abstract class ExampleFileReader : IDisposable
{
    private protected ExampleFileReader(string path, ExampleRecordCodec codec)
    {
        ArgumentNullException.ThrowIfNull(codec);
        FilePath = path;
        Codec = codec;
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        if (!stream.CanSeek)
        {
            stream.Dispose();
            throw new ExampleFileException(
                path, 0, "the file is a pipe or another stream that cannot be read twice, but the examples are validated in a first pass and sent in a second; save them to a regular file first");
        }

        Lines = new Utf8LineReader(stream, path, codec.MaxRecordBytes);
    }

    public string FilePath { get; }

    public ExampleRecordCodec Codec { get; }

    /// <summary>Line of the last example read, from 1.</summary>
    public long LineNumber => Lines.LineNumber;

    private protected Utf8LineReader Lines { get; }

    /// <summary>
    /// Opens <paramref name="path"/>. Throws <see cref="FileNotFoundException"/> or another <see cref="IOException"/> when
    /// it cannot be read, and <see cref="ExampleFileException"/> for a pipe or another file that cannot be read twice.
    /// </summary>
    public static ExampleFileReader Open(string path, ExampleFileFormat format, ExampleRecordCodec codec) => format switch
    {
        ExampleFileFormat.JsonLines => new JsonLinesExampleReader(path, codec),
        ExampleFileFormat.Csv => new CsvExampleReader(path, codec),
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "unknown example file format"),
    };

    /// <summary>
    /// Reads the whole file and checks every example and that no id repeats, so that nothing is produced from a
    /// file with an invalid line. Returns the number of examples. The ids are kept in memory during the check,
    /// so its memory grows with the number of examples but not with their size. The record size is checked in
    /// <paramref name="recordFormat"/>, the format the examples will be sent in.
    /// </summary>
    public static long Validate(string path, ExampleFileFormat format, ExampleRecordCodec codec, RecordFormat recordFormat = RecordFormat.Json)
    {
        using ExampleFileReader reader = Open(path, format, codec);
        var firstLines = new Dictionary<string, long>(StringComparer.Ordinal);
        while (reader.TryRead(out LabeledExample? example))
        {
            if (!firstLines.TryAdd(example.Id, reader.LineNumber))
            {
                throw reader.Invalid($"field 'id': '{example.Id}' repeats the id on line {firstLines[example.Id]}; ids must be unique");
            }

            // The binary format's id length field has 16 bits, so a longer id cannot be written in it.
            int idBytes = Encoding.UTF8.GetByteCount(example.Id);
            if (recordFormat == RecordFormat.Binary && idBytes > BinaryExampleRecord.MaxIdBytes)
            {
                throw reader.Invalid($"field 'id' is {idBytes} bytes in UTF-8; the binary record format allows at most {BinaryExampleRecord.MaxIdBytes}");
            }

            int recordBytes = ExampleProducer.Encode(recordFormat, example).Length;
            if (recordBytes > codec.MaxRecordBytes)
            {
                throw reader.Invalid($"the example encodes to a {recordBytes}-byte record; the limit is {codec.MaxRecordBytes}");
            }

            // The id is also the record's key, so a long id counts twice toward the producer's message size limit.
            if (idBytes + recordBytes > ExampleProducer.MaxKeyAndValueBytes)
            {
                throw reader.Invalid(
                    $"the id ({idBytes} bytes) and the record ({recordBytes} bytes) make a Kafka message of {idBytes + recordBytes} bytes; the limit is {ExampleProducer.MaxKeyAndValueBytes}. Shorten the id, or in the JSON format round the features to fewer digits");
            }
        }

        if (firstLines.Count == 0)
        {
            throw new ExampleFileException(path, 0, "the file contains no examples");
        }

        return firstLines.Count;
    }

    /// <summary>Reads the examples in file order, opening the file when the enumeration starts.</summary>
    public static IEnumerable<LabeledExample> ReadAll(string path, ExampleFileFormat format, ExampleRecordCodec codec)
    {
        using ExampleFileReader reader = Open(path, format, codec);
        while (reader.TryRead(out LabeledExample? example))
        {
            yield return example;
        }
    }

    /// <summary>Reads the next example and returns false at the end of the file. Throws <see cref="ExampleFileException"/> for an invalid line.</summary>
    public abstract bool TryRead([NotNullWhen(true)] out LabeledExample? example);

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            Lines.Dispose();
        }
    }

    /// <summary>Reads the next line and rejects it when it is blank, not valid UTF-8 or contains a NUL byte. Returns false at the end of the file.</summary>
    private protected bool TryReadTextLine(out ReadOnlySpan<byte> line)
    {
        if (!Lines.TryReadLine(out line))
        {
            return false;
        }

        if (line.Trim(" \t"u8).IsEmpty)
        {
            throw Invalid("the line is blank; remove blank lines, including extra ones at the end of the file");
        }

        if (!Utf8.IsValid(line))
        {
            throw Invalid("the line is not valid UTF-8");
        }

        // .NET number parsing ignores trailing NUL characters, so a CSV field such as "7\0" would otherwise read as 7.
        int nul = line.IndexOf((byte)0);
        if (nul >= 0)
        {
            throw Invalid($"byte {nul + 1} of the line is a NUL byte (0x00), which no valid line contains");
        }

        return true;
    }

    /// <summary>Creates the error of the current line.</summary>
    private protected ExampleFileException Invalid(string problem) => new(FilePath, LineNumber, problem);
}
