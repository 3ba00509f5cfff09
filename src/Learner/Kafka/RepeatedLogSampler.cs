namespace ContinualServe.Learner.Kafka;

/// <summary>
/// Counts the occurrences of a repeated log event and selects the ones to write: the first <see cref="FirstLogged"/>,
/// then every <see cref="LogEvery"/>th. While a broker is down, librdkafka reports an error or log line at each reconnect
/// attempt, many times a second, and this keeps such a report from flooding the log. Safe to call from any thread.
/// </summary>
public sealed class RepeatedLogSampler
{
    /// <summary>Occurrences written before the sampling starts.</summary>
    public const int FirstLogged = 10;

    /// <summary>After the first <see cref="FirstLogged"/>, each occurrence whose count is a multiple of this is written.</summary>
    public const int LogEvery = 100;

    private long occurrences;

    /// <summary>Occurrences counted so far.</summary>
    public long Occurrences => Interlocked.Read(ref occurrences);

    /// <summary>Counts one occurrence and returns true when it is to be logged.</summary>
    /// <param name="count">The occurrence's number, counting from 1, for the log message.</param>
    public bool Count(out long count)
    {
        count = Interlocked.Increment(ref occurrences);
        return count <= FirstLogged || count % LogEvery == 0;
    }

    /// <summary>Counts one occurrence and returns true when it is to be logged.</summary>
    public bool Count() => Count(out _);
}
