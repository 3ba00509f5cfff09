using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using ContinualServe.Learner.Data;

namespace ContinualServe.Learner.Ingestion;

/// <summary>
/// Reader of a CSV file of labeled examples. The first row is a header that names the columns: <c>task</c>
/// (a positive integer), <c>label</c> (an integer from 0 to the class count minus 1), an optional <c>id</c>, and
/// one column per feature, with any other names (such as f0, f1 or pixel1, pixel2). The features are the
/// remaining columns in header order. The names id, task and label match in any letter case, and header names
/// are trimmed. Without an id column, the id of the Nth example is the file name without its extension, a
/// hyphen and N, e.g. "cats-1". Numbers use the invariant culture ("0.5", "1e-3"), fields are separated by
/// commas, and a field may be quoted with double quotes, with "" for a quote inside. A quoted field cannot
/// contain a line break, so that every row is one line. Lines end with LF or CRLF, and a carriage return
/// anywhere else in a line is invalid.
/// </summary>
public sealed class CsvExampleReader : ExampleFileReader
{
    private readonly List<ReadOnlyMemory<char>> fields = [];
    private readonly string idPrefix;
    private string[] columnNames = [];
    private int idColumn = -1;
    private int taskColumn = -1;
    private int labelColumn = -1;
    private int[] featureColumns = [];
    private long rowCount;

    public CsvExampleReader(string path, ExampleRecordCodec codec)
        : base(path, codec)
    {
        idPrefix = Path.GetFileNameWithoutExtension(path) + "-";
    }

    public override bool TryRead([NotNullWhen(true)] out LabeledExample? example)
    {
        example = null;
        if (columnNames.Length == 0)
        {
            ReadHeader();
        }

        if (!TryReadRow(out string? row))
        {
            return false;
        }

        Split(row);
        if (fields.Count != columnNames.Length)
        {
            throw Invalid($"the row has {fields.Count} fields but the header has {columnNames.Length} columns");
        }

        rowCount++;
        string id = idColumn < 0 ? idPrefix + rowCount.ToString(CultureInfo.InvariantCulture) : fields[idColumn].ToString();
        if (id.Length == 0)
        {
            throw Invalid("column 'id' is empty; give every example an id or leave out the id column");
        }

        if (ExampleRecordCodec.IdError(id) is { } idError)
        {
            throw Invalid("column 'id' " + idError);
        }

        int task = ParseInteger(taskColumn, minimum: 1, maximum: int.MaxValue, "a positive integer");
        int label = ParseInteger(labelColumn, minimum: 0, maximum: Codec.ClassCount - 1, $"an integer from 0 to {Codec.ClassCount - 1}");
        var features = new float[featureColumns.Length];
        for (int index = 0; index < features.Length; index++)
        {
            int column = featureColumns[index];
            ReadOnlySpan<char> text = fields[column].Span;
            if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float value) || float.IsNaN(value))
            {
                throw Invalid($"column '{columnNames[column]}' is '{text}'; expected a finite number such as 12 or 0.5");
            }

            // A number too large for FP32, such as 1e39, parses as infinity, and so do the words Infinity and -Infinity.
            if (float.IsInfinity(value))
            {
                bool finiteNumber = double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed)
                    && double.IsFinite(parsed);
                throw Invalid(finiteNumber
                    ? string.Create(
                        CultureInfo.InvariantCulture,
                        $"column '{columnNames[column]}' is '{text}', outside the FP32 range; the maximum absolute value is {Codec.MaxAbsFeatureValue} (Learner:MaxAbsFeatureValue)")
                    : $"column '{columnNames[column]}' is '{text}'; expected a finite number such as 12 or 0.5");
            }

            features[index] = value;
        }

        example = new LabeledExample(id, task, label, features);

        // The learner dead-letters a record over its limits, so a file is checked against the same limits here.
        string limitError = Codec.LimitError(example);
        if (limitError.Length > 0)
        {
            throw Invalid(limitError);
        }

        return true;
    }

    private void ReadHeader()
    {
        if (!TryReadRow(out string? row))
        {
            throw new ExampleFileException(FilePath, 0, "the file is empty; expected a header row with the columns task, label, an optional id and one column per feature");
        }

        Split(row);
        string[] names = fields.Select(field => field.ToString().Trim()).ToArray();
        var features = new List<int>(names.Length);
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (int column = 0; column < names.Length; column++)
        {
            string name = names[column];
            if (name.Length == 0)
            {
                throw Invalid($"header column {column + 1} has no name");
            }

            if (!seen.Add(name))
            {
                throw Invalid($"header column '{name}' appears more than once");
            }

            if (name.Equals("id", StringComparison.OrdinalIgnoreCase))
            {
                idColumn = column;
            }
            else if (name.Equals("task", StringComparison.OrdinalIgnoreCase))
            {
                taskColumn = column;
            }
            else if (name.Equals("label", StringComparison.OrdinalIgnoreCase))
            {
                labelColumn = column;
            }
            else
            {
                features.Add(column);
            }
        }

        if (taskColumn < 0 || labelColumn < 0)
        {
            throw Invalid($"the header has no '{(taskColumn < 0 ? "task" : "label")}' column; expected the columns task, label, an optional id and one column per feature");
        }

        if (features.Count != Codec.FeatureCount)
        {
            throw Invalid($"the header has {features.Count} feature columns; expected {Codec.FeatureCount}, the feature count given to produce with --features");
        }

        columnNames = names;
        featureColumns = [.. features];
    }

    // A carriage return inside a line comes from CR-only line endings, which make the whole file one line.
    private bool TryReadRow([NotNullWhen(true)] out string? row)
    {
        row = null;
        if (!TryReadTextLine(out ReadOnlySpan<byte> line))
        {
            return false;
        }

        if (line.Contains((byte)'\r'))
        {
            throw Invalid("the line contains a carriage return (CR) before its end; end lines with LF or CRLF");
        }

        row = Encoding.UTF8.GetString(line);
        return true;
    }

    private int ParseInteger(int column, int minimum, int maximum, string expected)
    {
        ReadOnlySpan<char> text = fields[column].Span;
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < minimum || value > maximum)
        {
            throw Invalid($"column '{columnNames[column]}' is '{text}'; expected {expected}");
        }

        return value;
    }

    // Splits one line into fields. An unquoted field is taken as it is, and a quoted field loses its quotes and
    // has each "" read as one quote.
    private void Split(string line)
    {
        fields.Clear();
        int position = 0;
        while (true)
        {
            if (position < line.Length && line[position] == '"')
            {
                position = ReadQuoted(line, position);
                if (position == line.Length)
                {
                    return;
                }

                if (line[position] != ',')
                {
                    throw Invalid($"{FieldName(fields.Count - 1)} has characters after its closing quote");
                }

                position++;
                continue;
            }

            int comma = line.IndexOf(',', position);
            int length = (comma < 0 ? line.Length : comma) - position;
            ReadOnlyMemory<char> field = line.AsMemory(position, length);
            if (field.Span.Contains('"'))
            {
                throw Invalid($"{FieldName(fields.Count)} contains a quote but does not start with one; quote the whole field and write a quote inside it as \"\"");
            }

            fields.Add(field);
            if (comma < 0)
            {
                return;
            }

            position = comma + 1;
        }
    }

    // Reads the quoted field that starts at the quote at position and returns the position after its closing quote.
    private int ReadQuoted(string line, int position)
    {
        int contentStart = position + 1;
        StringBuilder? unescaped = null;
        int index = contentStart;
        while (true)
        {
            int quote = line.IndexOf('"', index);
            if (quote < 0)
            {
                throw Invalid($"{FieldName(fields.Count)} has an opening quote but no closing quote; a quoted field must end on the same line");
            }

            if (quote + 1 < line.Length && line[quote + 1] == '"')
            {
                unescaped ??= new StringBuilder();
                unescaped.Append(line, index, quote + 1 - index);
                index = quote + 2;
                continue;
            }

            if (unescaped is null)
            {
                fields.Add(line.AsMemory(contentStart, quote - contentStart));
            }
            else
            {
                unescaped.Append(line, index, quote - index);
                fields.Add(unescaped.ToString().AsMemory());
            }

            return quote + 1;
        }
    }

    private string FieldName(int field) => field < columnNames.Length
        ? $"column '{columnNames[field]}'"
        : $"field {field + 1}";
}
