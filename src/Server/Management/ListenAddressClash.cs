using ContinualServe.Server.Hosting;

namespace ContinualServe.Server.Management;

/// <summary>
/// Finds a management listen address that Kestrel cannot bind because an inference listen address already takes the
/// same host and port. Without this check the start fails later with "address already in use", which names neither setting.
/// It also rejects port 0 in the management addresses, which would fail the start later with an unhandled exception.
/// </summary>
internal static class ListenAddressClash
{
    // Kestrel binds "*", "+" and the unspecified addresses on every interface, and "localhost" on both loopback addresses.
    private static readonly HashSet<string> AnyHost = new(StringComparer.OrdinalIgnoreCase) { "*", "+", "0.0.0.0", "[::]" };
    private static readonly HashSet<string> LocalhostAddresses = new(StringComparer.OrdinalIgnoreCase) { "127.0.0.1", "[::1]" };

    /// <summary>
    /// Throws when an address in <paramref name="managementUrls"/> has port 0, or shares its port with one in
    /// <paramref name="inferenceUrls"/> on an overlapping host.
    /// </summary>
    /// <exception cref="InvalidConfigurationException">A management address has port 0, or the two lists overlap.</exception>
    public static void ThrowIfAny(string inferenceUrls, string managementUrls)
    {
        foreach (string management in Split(managementUrls))
        {
            // The management API is served only on the port of Management:Urls, so that port must be known before the start.
            if (TryParse(management, out _, out int port) && port == 0)
            {
                throw new InvalidConfigurationException(
                    $"--management-urls (Management:Urls) contains {management}, but port 0 is not supported for the management "
                    + "listener, because the server restricts the management API to its port before it binds. Give an explicit "
                    + "port, such as http://127.0.0.1:8081.");
            }

            foreach (string inference in Split(inferenceUrls))
            {
                if (Overlap(inference, management))
                {
                    string addresses = string.Equals(inference, management, StringComparison.OrdinalIgnoreCase)
                        ? $"both contain {management}"
                        : $"contain {inference} and {management}, which share a port";
                    throw new InvalidConfigurationException(
                        $"--urls (urls) and --management-urls (Management:Urls) {addresses}. The management API needs a listen "
                        + "address of its own: give --management-urls another port, or leave it unset to serve the management "
                        + "API on the inference address.");
                }
            }
        }
    }

    private static string[] Split(string urls) =>
        urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// Tells whether the second address fails to bind while the first is bound, as on Linux without SO_REUSEPORT.
    /// Port 0 picks a free port, so it never overlaps.
    /// </summary>
    internal static bool Overlap(string first, string second)
    {
        if (!TryParse(first, out string firstHost, out int firstPort) || !TryParse(second, out string secondHost, out int secondPort))
        {
            // Kestrel reports an unparsable address when it starts.
            return false;
        }

        if (firstPort != secondPort || firstPort == 0)
        {
            return false;
        }

        return string.Equals(firstHost, secondHost, StringComparison.OrdinalIgnoreCase)
            || AnyHost.Contains(firstHost)
            || AnyHost.Contains(secondHost)
            || IsLocalhostPair(firstHost, secondHost)
            || IsLocalhostPair(secondHost, firstHost);
    }

    private static bool IsLocalhostPair(string name, string address) =>
        string.Equals(name, "localhost", StringComparison.OrdinalIgnoreCase) && LocalhostAddresses.Contains(address);

    private static bool TryParse(string url, out string host, out int port)
    {
        host = "";
        port = 0;

        // Uri rejects the "*" and "+" hosts that Kestrel accepts, so they are parsed as the unspecified address.
        string parsable = url.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal);
        if (!Uri.TryCreate(parsable, UriKind.Absolute, out Uri? uri) || uri.Port < 0)
        {
            return false;
        }

        host = uri.Host;
        port = uri.Port;
        return true;
    }
}
