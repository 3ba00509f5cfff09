namespace ContinualServe.Learner.Replay;

/// <summary>How the replay buffer chooses which examples to keep.</summary>
public enum ReplayBufferKind
{
    /// <summary>Reservoir sampling: a uniform sample of the whole stream, so class shares follow the stream's.</summary>
    Reservoir,

    /// <summary>Class-balanced reservoir: the largest class gives up a slot to an under-represented one.</summary>
    ClassBalanced,
}
