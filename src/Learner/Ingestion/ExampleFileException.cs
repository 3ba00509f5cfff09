namespace ContinualServe.Learner.Ingestion;

/// <summary>Error of an invalid example file: the message names the file, the 1-based line and the problem.</summary>
public sealed class ExampleFileException : Exception
{
    public ExampleFileException()
        : this(string.Empty, 0, "the example file is invalid")
    {
    }

    public ExampleFileException(string message)
        : this(string.Empty, 0, message)
    {
    }

    public ExampleFileException(string message, Exception innerException)
        : base(message, innerException)
    {
        FilePath = string.Empty;
        Problem = message;
    }

    /// <summary>Creates the error of <paramref name="lineNumber"/> in <paramref name="filePath"/>. Line 0 means the whole file.</summary>
    public ExampleFileException(string filePath, long lineNumber, string problem)
        : base(Format(filePath, lineNumber, problem))
    {
        FilePath = filePath;
        LineNumber = lineNumber;
        Problem = problem;
    }

    public string FilePath { get; }

    /// <summary>Line of the problem, from 1, or 0 when the problem concerns the whole file.</summary>
    public long LineNumber { get; }

    /// <summary>Problem without the file and line, such as "column 'label' is '12'; expected an integer from 0 to 9".</summary>
    public string Problem { get; }

    private static string Format(string filePath, long lineNumber, string problem) => lineNumber > 0
        ? $"{filePath} line {lineNumber}: {problem}"
        : $"{filePath}: {problem}";
}
