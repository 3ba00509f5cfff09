namespace ContinualServe.Learner.Replay;

/// <summary>
/// Fixed-capacity replay buffer filled by reservoir sampling (Vitter's algorithm R): after n offers,
/// every offered example is held with probability capacity / n, whatever its position in the stream.
/// Not thread-safe; the learner's training thread owns it.
/// </summary>
public sealed class ReservoirReplayBuffer : IReplayBuffer
{
    private readonly ReplayExample[] slots;
    private readonly Random random;
    private int count;

    public ReservoirReplayBuffer(int capacity, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 0);
        slots = new ReplayExample[capacity];
        random = new Random(seed);
    }

    public int Capacity => slots.Length;

    public int Count => count;

    /// <summary>Number of examples offered so far, stored or not.</summary>
    public long Seen { get; private set; }

    public IReadOnlyList<ReplayExample> Examples => new ArraySegment<ReplayExample>(slots, 0, count);

    /// <summary>Empty: reservoir sampling depends on <see cref="Seen"/> alone.</summary>
    public IReadOnlyDictionary<int, long> SeenByClass { get; } = new Dictionary<int, long>();

    /// <summary>Offers one example; returns true when it was stored.</summary>
    public bool Offer(ReplayExample example)
    {
        ArgumentNullException.ThrowIfNull(example);
        Seen++;
        if (slots.Length == 0)
        {
            return false;
        }

        if (count < slots.Length)
        {
            slots[count++] = example;
            return true;
        }

        long position = random.NextInt64(Seen);
        if (position < slots.Length)
        {
            slots[position] = example;
            return true;
        }

        return false;
    }

    /// <summary>
    /// Replaces the contents with <paramref name="examples"/> and the offer count with <paramref name="seen"/>,
    /// as saved in a learner checkpoint. The random generator is not restored, so later replacements differ
    /// from an uninterrupted run but keep the reservoir property.
    /// </summary>
    public void Restore(IReadOnlyList<ReplayExample> examples, long seen, IReadOnlyDictionary<int, long>? seenByClass = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(examples.Count, slots.Length);
        ArgumentOutOfRangeException.ThrowIfLessThan(seen, examples.Count);
        Array.Clear(slots);
        for (int index = 0; index < examples.Count; index++)
        {
            slots[index] = examples[index];
        }

        count = examples.Count;
        Seen = seen;
    }

    /// <summary>Draws <paramref name="size"/> examples uniformly with replacement; fewer when the buffer is empty.</summary>
    public IReadOnlyList<ReplayExample> Sample(int size)
    {
        if (count == 0 || size <= 0)
        {
            return [];
        }

        var sample = new ReplayExample[size];
        for (int index = 0; index < size; index++)
        {
            sample[index] = slots[random.Next(count)];
        }

        return sample;
    }
}
