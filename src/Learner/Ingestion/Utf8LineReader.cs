namespace ContinualServe.Learner.Ingestion;

/// <summary>
/// Reader of the lines of a text file as raw bytes, with 1-based line numbers. Lines end at '\n' with an
/// optional '\r' before it, and a UTF-8 byte order mark before the first line is dropped. It keeps one buffer
/// of at most a few times the maximum line length, so a file of any size streams through it.
/// </summary>
internal sealed class Utf8LineReader : IDisposable
{
    private readonly Stream stream;
    private readonly string path;
    private byte[] buffer = new byte[64 * 1024];
    private int start;
    private int end;
    private bool endOfStream;

    public Utf8LineReader(Stream stream, string path, int maxLineBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLineBytes, 1);
        this.stream = stream;
        this.path = path;
        MaxLineBytes = maxLineBytes;
    }

    public int MaxLineBytes { get; }

    /// <summary>Number of the line that the last successful <see cref="TryReadLine"/> returned.</summary>
    public long LineNumber { get; private set; }

    /// <summary>
    /// Reads the next line without its line ending and returns false at the end of the file. The span is valid
    /// until the next call. Throws <see cref="ExampleFileException"/> for a line longer than <see cref="MaxLineBytes"/>.
    /// </summary>
    public bool TryReadLine(out ReadOnlySpan<byte> line)
    {
        int searched = 0;
        while (true)
        {
            int newline = buffer.AsSpan(start + searched, end - start - searched).IndexOf((byte)'\n');
            if (newline >= 0)
            {
                int length = searched + newline;
                ThrowIfLonger(length);
                line = Complete(buffer.AsSpan(start, length));
                start += length + 1;
                return true;
            }

            searched = end - start;
            ThrowIfLonger(searched);
            if (endOfStream)
            {
                if (searched == 0)
                {
                    line = default;
                    return false;
                }

                line = Complete(buffer.AsSpan(start, searched));
                start = end;
                return true;
            }

            Fill();
        }
    }

    public void Dispose() => stream.Dispose();

    private ReadOnlySpan<byte> Complete(ReadOnlySpan<byte> line)
    {
        LineNumber++;
        if (LineNumber == 1 && line.StartsWith("\uFEFF"u8))
        {
            line = line[3..];
        }

        return line.EndsWith((byte)'\r') ? line[..^1] : line;
    }

    // A line ending in '\r' may reach the limit plus one byte, because the limit applies to the line without its line ending.
    private void ThrowIfLonger(int length)
    {
        if (length > MaxLineBytes + 1 || (length == MaxLineBytes + 1 && buffer[start + MaxLineBytes] != (byte)'\r'))
        {
            throw new ExampleFileException(path, LineNumber + 1, $"the line is longer than {MaxLineBytes} bytes");
        }
    }

    // Moves the unread bytes to the front, grows the buffer when they fill it, and reads more.
    private void Fill()
    {
        if (start > 0)
        {
            Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
            end -= start;
            start = 0;
        }

        if (end == buffer.Length)
        {
            Array.Resize(ref buffer, buffer.Length * 2);
        }

        int read = stream.Read(buffer, end, buffer.Length - end);
        if (read == 0)
        {
            endOfStream = true;
        }
        else
        {
            end += read;
        }
    }
}
