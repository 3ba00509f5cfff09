using System.Text;
using ContinualServe.Learner.Data;

namespace ContinualServe.Learner.Checkpoints;

/// <summary>
/// Append-only log of the ids of trained examples, one per line. Ids are buffered in memory and appended
/// (and flushed to disk) just before a checkpoint is written, and the checkpoint records the log's length;
/// on restart the log is cut back to that length, so it lists each example passed to a step up to the
/// checkpoint once, including those of rejected rounds, whose updates were discarded.
/// </summary>
public sealed class TrainingLog
{
    public const string FileName = "trained-ids.log";

    private readonly List<string> buffered = [];

    public TrainingLog(string directory)
    {
        Directory.CreateDirectory(directory);
        Path = System.IO.Path.Combine(directory, FileName);
    }

    public string Path { get; }

    public void Record(IReadOnlyList<LabeledExample> examples)
    {
        ArgumentNullException.ThrowIfNull(examples);
        foreach (LabeledExample example in examples)
        {
            buffered.Add(example.Id);
        }
    }

    /// <summary>Appends the buffered ids durably and returns the log's length in bytes.</summary>
    public long Flush()
    {
        using var stream = new FileStream(Path, FileMode.Append, FileAccess.Write, FileShare.Read);
        if (buffered.Count > 0)
        {
            var text = new StringBuilder();
            foreach (string id in buffered)
            {
                text.Append(id).Append('\n');
            }

            stream.Write(Encoding.UTF8.GetBytes(text.ToString()));
            stream.Flush(flushToDisk: true);
            buffered.Clear();
        }

        return stream.Length;
    }

    /// <summary>Drops the buffered ids and cuts the file back to <paramref name="length"/> bytes.</summary>
    public void Truncate(long length)
    {
        buffered.Clear();
        using var stream = new FileStream(Path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read);
        if (stream.Length > length)
        {
            stream.SetLength(length);
            stream.Flush(flushToDisk: true);
        }
    }

    /// <summary>Reads every id in the log at <paramref name="path"/>, in order.</summary>
    public static IReadOnlyList<string> ReadIds(string path) =>
        File.ReadAllLines(path).Where(line => line.Length > 0).ToList();
}
