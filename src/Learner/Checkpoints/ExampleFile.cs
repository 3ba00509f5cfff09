using System.Runtime.InteropServices;
using System.Text;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Replay;

namespace ContinualServe.Learner.Checkpoints;

/// <summary>
/// Binary files of examples inside a checkpoint: a format tag and a count, then per example its id, task,
/// label, features and (for replay) stored logits. Little-endian, as <see cref="BinaryWriter"/> writes.
/// </summary>
internal static class ExampleFile
{
    private const int FormatTag = 0x43534531; // "CSE1"

    public static void WriteReplay(string path, IReadOnlyList<ReplayExample> examples)
    {
        using FileStream stream = CreateNew(path);
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(FormatTag);
            writer.Write(examples.Count);
            foreach (ReplayExample example in examples)
            {
                WriteExample(writer, example.Id, example.Task, example.Label, example.Features);
                WriteFloats(writer, example.Logits);
            }
        }

    }

    public static List<ReplayExample> ReadReplay(string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        int count = ReadHeader(reader, path);
        var examples = new List<ReplayExample>(count);
        for (int index = 0; index < count; index++)
        {
            LabeledExample example = ReadExample(reader);
            examples.Add(new ReplayExample(example.Id, example.Task, example.Label, example.Features, ReadFloats(reader)));
        }

        return examples;
    }

    public static void WriteExamples(string path, IReadOnlyList<LabeledExample> examples)
    {
        using FileStream stream = CreateNew(path);
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(FormatTag);
            writer.Write(examples.Count);
            foreach (LabeledExample example in examples)
            {
                WriteExample(writer, example.Id, example.Task, example.Label, example.Features);
            }
        }

    }

    public static List<LabeledExample> ReadExamples(string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        int count = ReadHeader(reader, path);
        var examples = new List<LabeledExample>(count);
        for (int index = 0; index < count; index++)
        {
            examples.Add(ReadExample(reader));
        }

        return examples;
    }

    // Not flushed to disk here: LearnerCheckpointStore flushes every data file before it renames the checkpoint into place.
    private static FileStream CreateNew(string path) =>
        new(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16);

    private static int ReadHeader(BinaryReader reader, string path)
    {
        if (reader.ReadInt32() != FormatTag)
        {
            throw new InvalidDataException($"{path} is not a checkpoint example file (unknown format tag).");
        }

        int count = reader.ReadInt32();
        return count >= 0 ? count : throw new InvalidDataException($"{path} declares {count} examples.");
    }

    private static void WriteExample(BinaryWriter writer, string id, int task, int label, float[] features)
    {
        writer.Write(id);
        writer.Write(task);
        writer.Write(label);
        WriteFloats(writer, features);
    }

    private static LabeledExample ReadExample(BinaryReader reader)
    {
        string id = reader.ReadString();
        int task = reader.ReadInt32();
        int label = reader.ReadInt32();
        return new LabeledExample(id, task, label, ReadFloats(reader));
    }

    // Written as one block of little-endian floats; BitConverter.IsLittleEndian holds on every supported platform.
    private static void WriteFloats(BinaryWriter writer, float[] values)
    {
        writer.Write(values.Length);
        writer.Write(MemoryMarshal.AsBytes(values.AsSpan()));
    }

    private static float[] ReadFloats(BinaryReader reader)
    {
        int length = reader.ReadInt32();
        if (length is < 0 or > 1 << 24)
        {
            throw new InvalidDataException($"A checkpoint example declares {length} values.");
        }

        var values = new float[length];
        Span<byte> bytes = MemoryMarshal.AsBytes(values.AsSpan());
        for (int total = 0; total < bytes.Length;)
        {
            int read = reader.Read(bytes[total..]);
            if (read == 0)
            {
                throw new InvalidDataException($"A checkpoint example ends before its {length} values.");
            }

            total += read;
        }

        return values;
    }
}
