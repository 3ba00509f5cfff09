namespace ContinualServe.Server.Hosting;

/// <summary>Suggests the known name that a misspelled one was probably meant to be.</summary>
internal static class Spelling
{
    /// <summary>
    /// Returns the candidate one or two edits (insertions, deletions, substitutions) away from <paramref name="word"/>,
    /// the nearest first, or null when none is that near. Letter case counts unless <paramref name="ignoreCase"/>.
    /// </summary>
    public static string? Nearest(string word, IEnumerable<string> candidates, bool ignoreCase = false)
    {
        string key = ignoreCase ? word.ToUpperInvariant() : word;
        return candidates
            .Select(candidate => (Candidate: candidate, Distance: EditDistance(key, ignoreCase ? candidate.ToUpperInvariant() : candidate)))
            .Where(pair => pair.Distance is > 0 and <= 2)
            .OrderBy(pair => pair.Distance)
            .Select(pair => pair.Candidate)
            .FirstOrDefault();
    }

    // Levenshtein distance: the fewest single-character insertions, deletions and substitutions from one string to the other.
    private static int EditDistance(string first, string second)
    {
        int[] previous = Enumerable.Range(0, second.Length + 1).ToArray();
        int[] current = new int[second.Length + 1];
        for (int row = 1; row <= first.Length; row++)
        {
            current[0] = row;
            for (int column = 1; column <= second.Length; column++)
            {
                int substitution = previous[column - 1] + (first[row - 1] == second[column - 1] ? 0 : 1);
                current[column] = Math.Min(substitution, Math.Min(previous[column] + 1, current[column - 1] + 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[second.Length];
    }
}
