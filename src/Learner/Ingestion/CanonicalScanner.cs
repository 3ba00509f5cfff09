namespace ContinualServe.Learner.Ingestion;

/// <summary>Byte scanner for the fast path of <see cref="ExampleRecordCodec"/>. Every method returns false on input it does not handle.</summary>
internal ref struct CanonicalScanner(ReadOnlySpan<byte> json)
{
    private readonly ReadOnlySpan<byte> json = json;
    private int position;

    /// <summary>Skips whitespace, then <paramref name="expected"/> if it is next.</summary>
    public bool Skip(byte expected)
    {
        SkipWhitespace();
        if (position < json.Length && json[position] == expected)
        {
            position++;
            return true;
        }

        return false;
    }

    public bool AtEnd()
    {
        SkipWhitespace();
        return position == json.Length;
    }

    /// <summary>Reads a string of printable ASCII without escapes.</summary>
    public bool TryReadPlainString(out ReadOnlySpan<byte> value)
    {
        value = default;
        if (!Skip((byte)'"'))
        {
            return false;
        }

        int start = position;
        while (position < json.Length)
        {
            byte character = json[position];
            if (character == (byte)'"')
            {
                value = json[start..position];
                position++;
                return true;
            }

            if (character is < 0x20 or > 0x7E or (byte)'\\')
            {
                return false;
            }

            position++;
        }

        return false;
    }

    /// <summary>Reads an integer of 1 to 9 digits with an optional minus sign, as JSON writes it (no leading zeros).</summary>
    public bool TryReadInteger(out int value)
    {
        value = 0;
        SkipWhitespace();
        bool negative = position < json.Length && json[position] == (byte)'-';
        if (negative)
        {
            position++;
        }

        if (!TryReadDigits(maxDigits: 9, out value))
        {
            return false;
        }

        value = negative ? -value : value;
        return true;
    }

    /// <summary>Reads an array of exactly <c>values.Length</c> integers of 1 to 3 digits.</summary>
    public bool TryReadPixels(Span<float> values)
    {
        if (!Skip((byte)'['))
        {
            return false;
        }

        for (int index = 0; index < values.Length; index++)
        {
            if (index > 0 && !Skip((byte)','))
            {
                return false;
            }

            SkipWhitespace();
            if (!TryReadDigits(maxDigits: 3, out int pixel))
            {
                return false;
            }

            values[index] = pixel;
        }

        return Skip((byte)']');
    }

    // A number that continues with '.', 'e' or 'E', or a digit past maxDigits, is not handled here.
    private bool TryReadDigits(int maxDigits, out int value)
    {
        value = 0;
        int start = position;
        while (position < json.Length && json[position] is >= (byte)'0' and <= (byte)'9')
        {
            if (position - start == maxDigits)
            {
                return false;
            }

            value = (value * 10) + (json[position] - '0');
            position++;
        }

        int length = position - start;
        if (length == 0 || (length > 1 && json[start] == (byte)'0'))
        {
            return false;
        }

        return position == json.Length || json[position] is not ((byte)'.' or (byte)'e' or (byte)'E');
    }

    private void SkipWhitespace()
    {
        while (position < json.Length && json[position] is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
        {
            position++;
        }
    }
}
