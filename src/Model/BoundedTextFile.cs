namespace ContinualServe.Model;

/// <summary>
/// Reader of small settings files, such as a bearer token or a librdkafka properties file, that stops at a size limit.
/// A wrong path to a large file then fails at once, and a pipe, whose length is unknown, can still be read.
/// </summary>
public static class BoundedTextFile
{
    /// <summary>
    /// Reads <paramref name="path"/> as <see cref="File.ReadAllText(string)"/> does (UTF-8 unless a byte order mark names
    /// another encoding), but at most <paramref name="maxCharacters"/> characters. Returns null when the file has more.
    /// </summary>
    /// <exception cref="IOException">The file is missing or cannot be read.</exception>
    /// <exception cref="UnauthorizedAccessException">The process may not read the file, or the path is a directory.</exception>
    public static string? ReadAtMost(string path, int maxCharacters)
    {
        var buffer = new char[maxCharacters + 1];
        using var reader = new StreamReader(path, detectEncodingFromByteOrderMarks: true);
        int length = reader.ReadBlock(buffer, 0, buffer.Length);
        return length > maxCharacters ? null : new string(buffer, 0, length);
    }
}
