namespace ContinualServe.Server.Hosting;

/// <summary>
/// The failure message last logged by a request filter or a polling loop, so that a failure that repeats at every
/// request or poll is logged once, and again only after the message changes or a request or poll succeeds. Safe to
/// use from any thread.
/// </summary>
internal sealed class RepeatedFailureLog
{
    private string? reported;

    /// <summary>Records <paramref name="message"/> and returns true when it differs from the one last recorded.</summary>
    public bool IsNew(string message) => Interlocked.Exchange(ref reported, message) != message;

    /// <summary>Forgets the last failure after a success, so that the next failure is logged again.</summary>
    public void Clear() => Volatile.Write(ref reported, null);
}
