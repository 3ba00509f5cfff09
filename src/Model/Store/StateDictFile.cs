using System.Text;
using static TorchSharp.torch;

namespace ContinualServe.Model.Store;

/// <summary>
/// Reads the tensor headers of a weights file that TorchSharp's <c>Module.save</c> wrote, and checks them against the
/// tensors a module expects. <c>Module.load</c> rejects a mismatch with an <see cref="ArgumentException"/> that names
/// neither the tensor nor the shapes, so files are checked here first.
/// </summary>
/// <remarks>
/// The format, as TorchSharp 0.107 writes it (<c>Module.save_state_dict</c> and <c>Tensor.Save</c>): the tensor count as
/// unsigned LEB128, then per tensor its name as a <see cref="BinaryWriter"/> string (7-bit encoded length, UTF-8), its
/// <see cref="ScalarType"/> code, its rank and each dimension as unsigned LEB128, and the raw bytes of its elements.
/// The format has no version number, so a TorchSharp upgrade that changes it makes every load fail. The round trip in
/// <c>ModelStoreTests.LoadedWeightsEqualSavedWeights</c> and the hand-written file in <c>WeightsFileCheckTests</c> catch that.
/// </remarks>
internal static class StateDictFile
{
    // Maximum number of problems, and of tensor names in one problem, that a message lists. The rest are counted.
    private const int MaxListed = 3;

    // Bounds on what a header may record, so that a file that is not a weights file cannot make the reader allocate
    // memory in proportion to its size. The architectures here have tensors of at most 4 dimensions and names such as
    // "layers.hidden0.weight", far below both bounds.
    private const int MaxRank = 64;
    private const int MaxNameBytes = 4096;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Checks that the file at <paramref name="path"/> contains exactly the tensors of <paramref name="expected"/>, with
    /// their data types and shapes. <paramref name="model"/> describes the expected model in the message.
    /// </summary>
    /// <exception cref="InvalidDataException">
    /// The file does not match, is truncated or is not a TorchSharp weights file. The message names each tensor that
    /// differs, with the shape or data type found and the one expected.
    /// </exception>
    /// <exception cref="IOException">The file cannot be read. Such an error may pass, so it keeps its type.</exception>
    public static void Verify(string path, IReadOnlyList<TensorLayout> expected, string model)
    {
        using FileStream stream = File.OpenRead(path);
        Verify(stream, path, expected, model);
    }

    /// <summary>
    /// Checks a weights file that <paramref name="contents"/> contains from its position on, as the path overload checks
    /// a file. <paramref name="path"/> names the file in the message. Leaves the stream open at an unspecified position.
    /// </summary>
    /// <exception cref="InvalidDataException">The contents do not match, are truncated or are not a TorchSharp weights file.</exception>
    public static void Verify(Stream contents, string path, IReadOnlyList<TensorLayout> expected, string model)
    {
        List<string> problems = FindMismatches(expected, ReadLayout(contents, path));
        if (problems.Count > 0)
        {
            throw new InvalidDataException(
                $"Weights file {path} does not match the model that its spec describes ({model}): {JoinProblems(problems)}");
        }
    }

    /// <summary>
    /// Returns each difference between <paramref name="found"/> and <paramref name="expected"/> as a clause that names the
    /// tensor, or an empty list when they match. Data type and shape differences come first, one per tensor, then the
    /// missing, the unexpected and the repeated names.
    /// </summary>
    public static List<string> FindMismatches(IReadOnlyList<TensorLayout> expected, IReadOnlyList<TensorLayout> found)
    {
        Dictionary<string, TensorLayout> expectedByName = expected.ToDictionary(layout => layout.Name, StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var problems = new List<string>();
        var duplicates = new List<string>();
        var unexpected = new List<string>();
        foreach (TensorLayout tensor in found)
        {
            if (!seen.Add(tensor.Name))
            {
                duplicates.Add(tensor.Name);
            }
            else if (!expectedByName.TryGetValue(tensor.Name, out TensorLayout? wanted))
            {
                unexpected.Add(tensor.Name);
            }
            else if (tensor.DataType != wanted.DataType)
            {
                problems.Add($"tensor '{tensor.Name}' has data type {tensor.DataType}, expected {wanted.DataType}");
            }
            else if (!tensor.Shape.SequenceEqual(wanted.Shape))
            {
                problems.Add(
                    $"tensor '{tensor.Name}' has shape {TensorLayout.FormatShape(tensor.Shape)}, expected {TensorLayout.FormatShape(wanted.Shape)}");
            }
        }

        List<string> missing = [.. expected.Select(layout => layout.Name).Where(name => !seen.Contains(name))];
        if (missing.Count > 0)
        {
            problems.Add($"{missing.Count} expected tensors are missing ({QuoteNames(missing)})");
        }

        if (unexpected.Count > 0)
        {
            problems.Add($"{unexpected.Count} tensors are not part of the model ({QuoteNames(unexpected)})");
        }

        if (duplicates.Count > 0)
        {
            problems.Add($"{duplicates.Count} tensors appear more than once ({QuoteNames(duplicates)})");
        }

        return problems;
    }

    /// <summary>Joins the first problems from <see cref="FindMismatches"/> into one sentence and counts the rest.</summary>
    public static string JoinProblems(List<string> problems)
    {
        int unlisted = problems.Count - MaxListed;
        string more = unlisted switch
        {
            <= 0 => "",
            1 => " 1 more problem is not listed.",
            _ => $" {unlisted} more problems are not listed.",
        };
        return $"{string.Join("; ", problems.Take(MaxListed))}.{more}";
    }

    /// <summary>Reads the name, data type and shape of each tensor in the file, in file order, skipping their data.</summary>
    /// <exception cref="InvalidDataException">The file is truncated or is not a TorchSharp weights file.</exception>
    public static IReadOnlyList<TensorLayout> ReadLayout(string path)
    {
        using FileStream stream = File.OpenRead(path);
        return ReadLayout(stream, path);
    }

    private static List<TensorLayout> ReadLayout(Stream stream, string path)
    {
        using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        try
        {
            return ReadTensors(reader, path);
        }
        catch (Exception exception) when (exception is EndOfStreamException or FormatException or DecoderFallbackException or OverflowException)
        {
            // EndOfStreamException is an IOException, but the length was known before the read, so it means a
            // truncated file, not a failed read.
            throw new InvalidDataException(
                $"Weights file {path} is truncated or is not a TorchSharp weights file: {exception.Message}", exception);
        }
    }

    private static List<TensorLayout> ReadTensors(BinaryReader reader, string path)
    {
        Stream stream = reader.BaseStream;
        long count = ReadUnsigned(reader);
        // Each tensor takes at least 3 bytes (name length, data type, rank), so a larger count cannot be real.
        if (count > (stream.Length - stream.Position) / 3)
        {
            throw new InvalidDataException(
                $"Weights file {path} records {count} tensors but has only {stream.Length} bytes; it is truncated or is not a TorchSharp weights file.");
        }

        var tensors = new List<TensorLayout>();
        for (long index = 0; index < count; index++)
        {
            string name = ReadName(reader);
            ScalarType dataType = ReadDataType(reader, name);
            long rank = ReadUnsigned(reader);
            if (rank > MaxRank)
            {
                throw new FormatException($"Tensor '{name}' records rank {rank}, but at most {MaxRank} dimensions are accepted.");
            }

            var shape = new long[rank];
            long elements = 1;
            for (int dimension = 0; dimension < rank; dimension++)
            {
                shape[dimension] = ReadUnsigned(reader);
                elements = checked(elements * shape[dimension]);
            }

            long dataBytes = checked(elements * ElementSize(dataType));
            long left = stream.Length - stream.Position;
            if (dataBytes > left)
            {
                throw new InvalidDataException(
                    $"Weights file {path} is truncated: tensor '{name}' {TensorLayout.FormatShape(shape)} needs {dataBytes} bytes of data, but only {left} are left.");
            }

            stream.Seek(dataBytes, SeekOrigin.Current);
            tensors.Add(new TensorLayout(name, dataType, shape));
        }

        if (stream.Position != stream.Length)
        {
            throw new InvalidDataException(
                $"Weights file {path} has {stream.Length - stream.Position} bytes after its last tensor; it is not a single TorchSharp weights file.");
        }

        return tensors;
    }

    private static string ReadName(BinaryReader reader)
    {
        int length = reader.Read7BitEncodedInt();
        if (length < 0 || length > MaxNameBytes)
        {
            throw new FormatException($"A tensor name records a length of {length} bytes, but at most {MaxNameBytes} are accepted.");
        }

        byte[] bytes = reader.ReadBytes(length);
        return bytes.Length == length
            ? StrictUtf8.GetString(bytes)
            : throw new EndOfStreamException($"The file ends inside a tensor name of {length} bytes.");
    }

    private static ScalarType ReadDataType(BinaryReader reader, string name)
    {
        long code = ReadUnsigned(reader);
        return code <= sbyte.MaxValue && Enum.IsDefined((ScalarType)code)
            ? (ScalarType)code
            : throw new FormatException($"Tensor '{name}' records data type code {code}, which TorchSharp does not define.");
    }

    // Unsigned LEB128, as TorchSharp's LEB128Codec writes it: 7 bits a byte, low bits first, high bit set on all but
    // the last byte. Nine bytes hold 63 bits, the most a non-negative long has.
    private static long ReadUnsigned(BinaryReader reader)
    {
        long value = 0;
        for (int shift = 0; shift < 63; shift += 7)
        {
            byte next = reader.ReadByte();
            value |= (long)(next & 0x7F) << shift;
            if ((next & 0x80) == 0)
            {
                return value >= 0 ? value : throw new FormatException("An LEB128 number does not fit in 63 bits.");
            }
        }

        throw new FormatException("An LEB128 number is longer than 9 bytes.");
    }

    private static int ElementSize(ScalarType dataType) => dataType switch
    {
        ScalarType.Byte or ScalarType.Int8 or ScalarType.Bool or ScalarType.QInt8 or ScalarType.QUInt8 => 1,
        ScalarType.Int16 or ScalarType.Float16 or ScalarType.BFloat16 => 2,
        ScalarType.Int32 or ScalarType.Float32 or ScalarType.QInt32 => 4,
        ScalarType.Int64 or ScalarType.Float64 or ScalarType.ComplexFloat32 => 8,
        ScalarType.ComplexFloat64 => 16,
        _ => throw new FormatException($"Data type {dataType} has no known element size."),
    };

    private static string QuoteNames(List<string> names)
    {
        string listed = string.Join(", ", names.Take(MaxListed).Select(name => $"'{name}'"));
        return names.Count > MaxListed ? $"{listed} and {names.Count - MaxListed} more" : listed;
    }
}
