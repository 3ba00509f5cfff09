namespace ContinualServe.Server.Hosting;

/// <summary>
/// Delay that a background loop waits after an exception it did not expect, before it tries again: 1 s after the first
/// failure in a row, doubling up to 30 s. A fault that repeats on every try is thus logged at most six times in its first
/// minute and at most twice a minute after that.
/// </summary>
internal static class FailureBackoff
{
    private static readonly TimeSpan FirstDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(30);

    /// <summary>Returns the delay after <paramref name="failuresInRow"/> failed tries in a row (1 or more).</summary>
    public static TimeSpan After(int failuresInRow)
    {
        int doublings = Math.Clamp(failuresInRow - 1, 0, 5);
        TimeSpan delay = FirstDelay * (1 << doublings);
        return delay < MaxDelay ? delay : MaxDelay;
    }
}
