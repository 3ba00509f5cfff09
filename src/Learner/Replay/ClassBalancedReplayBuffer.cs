namespace ContinualServe.Learner.Replay;

/// <summary>
/// Fixed-capacity replay buffer that keeps classes balanced (class-balanced reservoir sampling,
/// Chrysakis and Moens, ICML 2020). While there is room every example is stored. Once full, an example
/// of a class that is not among the largest replaces a random example of a largest class; an example of
/// a largest class replaces a random example of its own class with probability (its class's slots) /
/// (examples of its class seen so far), which keeps a uniform sample within each class.
/// Not thread-safe; the learner's training thread owns it.
/// </summary>
public sealed class ClassBalancedReplayBuffer : IReplayBuffer
{
    private readonly List<ReplayExample> slots;
    private readonly Dictionary<int, List<int>> slotsByClass = [];
    private readonly Dictionary<int, long> seenByClass = [];
    private readonly Random random;

    public ClassBalancedReplayBuffer(int capacity, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 0);
        Capacity = capacity;
        slots = new List<ReplayExample>(capacity);
        random = new Random(seed);
    }

    public int Capacity { get; }

    public int Count => slots.Count;

    public long Seen { get; private set; }

    public IReadOnlyList<ReplayExample> Examples => slots;

    public IReadOnlyDictionary<int, long> SeenByClass => seenByClass;

    /// <summary>Examples held per class label.</summary>
    public IReadOnlyDictionary<int, int> CountByClass =>
        slotsByClass.ToDictionary(pair => pair.Key, pair => pair.Value.Count);

    public bool Offer(ReplayExample example)
    {
        ArgumentNullException.ThrowIfNull(example);
        Seen++;
        seenByClass[example.Label] = seenByClass.GetValueOrDefault(example.Label) + 1;
        if (Capacity == 0)
        {
            return false;
        }

        if (slots.Count < Capacity)
        {
            SlotsOf(example.Label).Add(slots.Count);
            slots.Add(example);
            return true;
        }

        List<int> own = SlotsOf(example.Label);
        int largest = slotsByClass.Values.Max(list => list.Count);
        if (own.Count < largest)
        {
            List<int>[] largestClasses = slotsByClass.Values.Where(list => list.Count == largest).ToArray();
            List<int> donor = largestClasses[random.Next(largestClasses.Length)];
            int donorIndex = random.Next(donor.Count);
            int slot = donor[donorIndex];
            donor.RemoveAt(donorIndex);
            own.Add(slot);
            slots[slot] = example;
            return true;
        }

        long position = random.NextInt64(seenByClass[example.Label]);
        if (position < own.Count)
        {
            slots[own[(int)position]] = example;
            return true;
        }

        return false;
    }

    public IReadOnlyList<ReplayExample> Sample(int size)
    {
        if (slots.Count == 0 || size <= 0)
        {
            return [];
        }

        var sample = new ReplayExample[size];
        for (int index = 0; index < size; index++)
        {
            sample[index] = slots[random.Next(slots.Count)];
        }

        return sample;
    }

    /// <remarks>
    /// Without <paramref name="seenByClass"/> (a checkpoint written before it was saved), each class restarts from
    /// the number of its examples held, and within-class replacement then favours new examples more than an
    /// uninterrupted run would. A class's count is never set below the number of its examples held.
    /// </remarks>
    public void Restore(IReadOnlyList<ReplayExample> examples, long seen, IReadOnlyDictionary<int, long>? seenByClass = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(examples.Count, Capacity);
        ArgumentOutOfRangeException.ThrowIfLessThan(seen, examples.Count);
        slots.Clear();
        slotsByClass.Clear();
        this.seenByClass.Clear();
        foreach (ReplayExample example in examples)
        {
            SlotsOf(example.Label).Add(slots.Count);
            slots.Add(example);
            this.seenByClass[example.Label] = this.seenByClass.GetValueOrDefault(example.Label) + 1;
        }

        foreach ((int label, long count) in seenByClass ?? new Dictionary<int, long>())
        {
            this.seenByClass[label] = Math.Max(count, this.seenByClass.GetValueOrDefault(label));
        }

        Seen = seen;
    }

    private List<int> SlotsOf(int label)
    {
        if (!slotsByClass.TryGetValue(label, out List<int>? list))
        {
            list = [];
            slotsByClass[label] = list;
        }

        return list;
    }
}
