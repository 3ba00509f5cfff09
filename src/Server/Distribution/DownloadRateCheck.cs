using System.Diagnostics;
using System.Globalization;
using ContinualServe.Learner.Publishing;

namespace ContinualServe.Server.Distribution;

/// <summary>
/// Minimum average rate of one file's download (<see cref="DistributionOptions.MinDownloadBytesPerSecond"/>), measured
/// over consecutive windows of one stall timeout each, from the response headers on. A window that ends with fewer
/// bytes than the rate requires fails the download, so a store that sends a byte now and then, just often enough to
/// escape the stall timeout, cannot hold a download open indefinitely.
/// </summary>
/// <remarks>
/// The check runs as bytes arrive, so it needs no timer of its own. The caller creates it when the response headers
/// arrive, so the time the store takes to send them is not counted against the body's rate. The stall timeout and
/// HttpClient.Timeout bound that wait instead. Each later window starts at a read. The stall timer restarts at the
/// headers and at each read too, so a window in which no bytes arrive fails through the stall timeout instead.
/// </remarks>
internal sealed class DownloadRateCheck
{
    private readonly long minBytesPerSecond;
    private readonly TimeSpan window;
    private readonly string file;
    private readonly long version;
    private readonly Uri storeUrl;
    private long windowStart = Stopwatch.GetTimestamp();
    private long windowBytes;

    /// <summary>
    /// Starts the first window. A <paramref name="minBytesPerSecond"/> of 0, or a <paramref name="window"/> that is
    /// infinite or not positive (an HttpClient without a timeout), turns the check off.
    /// </summary>
    public DownloadRateCheck(long minBytesPerSecond, TimeSpan window, string file, long version, Uri storeUrl)
    {
        this.minBytesPerSecond = minBytesPerSecond;
        this.window = window;
        this.file = file;
        this.version = version;
        this.storeUrl = storeUrl;
    }

    private bool Enabled => minBytesPerSecond > 0 && window > TimeSpan.Zero;

    /// <summary>Adds bytes that arrived, and ends the current window once it has lasted its full length.</summary>
    /// <exception cref="TimeoutException">The window that ended brought fewer bytes per second than the minimum.</exception>
    public void Add(int bytes)
    {
        windowBytes += bytes;
        TimeSpan elapsed = Stopwatch.GetElapsedTime(windowStart);
        if (!Enabled || elapsed < window)
        {
            return;
        }

        double bytesPerSecond = windowBytes / elapsed.TotalSeconds;
        if (bytesPerSecond < minBytesPerSecond)
        {
            string seconds = elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture);
            string measured = bytesPerSecond.ToString("0", CultureInfo.InvariantCulture);
            throw new TimeoutException(
                $"The download of {file} of version {version} from {storeUrl} timed out: the store sent {windowBytes} bytes "
                + $"in {seconds} s ({measured} bytes/s), below "
                + $"{DistributionOptions.SectionName}:{nameof(DistributionOptions.MinDownloadBytesPerSecond)} ({minBytesPerSecond} bytes/s). "
                + "Check the network path to the learner's store, or lower the setting (0 turns the check off).");
        }

        windowStart = Stopwatch.GetTimestamp();
        windowBytes = 0;
    }
}
