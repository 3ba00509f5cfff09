namespace ContinualServe.Learner.Replay;

/// <summary>Creates the replay buffer of a given kind.</summary>
public static class ReplayBuffers
{
    public static IReplayBuffer Create(ReplayBufferKind kind, int capacity, int seed) => kind switch
    {
        ReplayBufferKind.Reservoir => new ReservoirReplayBuffer(capacity, seed),
        ReplayBufferKind.ClassBalanced => new ClassBalancedReplayBuffer(capacity, seed),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown replay buffer kind."),
    };
}
