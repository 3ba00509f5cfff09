namespace ContinualServe.Learner.Replay;

/// <summary>
/// A replay memory with a fixed budget in examples. The trainer offers every trained example and draws
/// replay samples from it. Not thread-safe; the training thread owns it.
/// </summary>
public interface IReplayBuffer
{
    /// <summary>Memory budget, in examples.</summary>
    int Capacity { get; }

    /// <summary>Examples held now, at most <see cref="Capacity"/>.</summary>
    int Count { get; }

    /// <summary>Examples offered so far, stored or not.</summary>
    long Seen { get; }

    IReadOnlyList<ReplayExample> Examples { get; }

    /// <summary>Examples offered so far per class label, for buffers whose choices depend on them; otherwise empty.</summary>
    IReadOnlyDictionary<int, long> SeenByClass { get; }

    /// <summary>Offers one example; returns true when it was stored.</summary>
    bool Offer(ReplayExample example);

    /// <summary>Draws <paramref name="size"/> examples uniformly with replacement; none when the buffer is empty.</summary>
    IReadOnlyList<ReplayExample> Sample(int size);

    /// <summary>
    /// Replaces the contents with <paramref name="examples"/> after <paramref name="seen"/> offers, as saved in a
    /// learner checkpoint. <paramref name="seenByClass"/> is the saved <see cref="SeenByClass"/>, or null when the
    /// checkpoint lacks it. The random generator is not restored, so later choices differ from an uninterrupted run.
    /// </summary>
    void Restore(IReadOnlyList<ReplayExample> examples, long seen, IReadOnlyDictionary<int, long>? seenByClass = null);
}
