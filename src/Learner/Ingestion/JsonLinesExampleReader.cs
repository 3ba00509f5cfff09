using System.Diagnostics.CodeAnalysis;
using ContinualServe.Learner.Data;

namespace ContinualServe.Learner.Ingestion;

/// <summary>
/// Reader of a JSON lines file: one record per line in the stream's format, validated by
/// <see cref="ExampleRecordCodec.TryDecodeJson"/>, so a line is accepted here exactly when the learner accepts it.
/// </summary>
public sealed class JsonLinesExampleReader : ExampleFileReader
{
    public JsonLinesExampleReader(string path, ExampleRecordCodec codec)
        : base(path, codec)
    {
    }

    public override bool TryRead([NotNullWhen(true)] out LabeledExample? example)
    {
        example = null;
        if (!TryReadTextLine(out ReadOnlySpan<byte> line))
        {
            return false;
        }

        if (!Codec.TryDecodeJson(line, out example, out string error) || example is null)
        {
            throw Invalid(error);
        }

        return true;
    }
}
