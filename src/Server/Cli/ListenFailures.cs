using System.Net.Sockets;

namespace ContinualServe.Server.Cli;

/// <summary>
/// Messages for the exceptions that Kestrel raises when it starts listening on a configured address. Kestrel parses and
/// binds the listen addresses only when it starts, after the configuration checks and, in the demo, after the broker
/// and the learner have started. The demo and the roles (serve, learn, all) share these messages.
/// </summary>
internal static class ListenFailures
{
    private const string AddressExample = "http://127.0.0.1:8080";

    /// <summary>
    /// Returns a message for a listen failure, or null for any other exception. <paramref name="addressOptions"/> names
    /// the options or keys that set the listen addresses, such as "--urls" or "--urls or --management-urls".
    /// <paramref name="httpsAdvice"/> is the advice that follows the message for an https:// address without a certificate.
    /// </summary>
    public static string? Describe(Exception exception, string addressOptions, string httpsAdvice)
    {
        ArgumentNullException.ThrowIfNull(exception);
        ArgumentException.ThrowIfNullOrEmpty(addressOptions);
        ArgumentNullException.ThrowIfNull(httpsAdvice);
        return exception switch
        {
            IOException when IsAddressInUse(exception) =>
                $"{exception.Message} Choose another address with {addressOptions}.",
            SocketException { SocketErrorCode: SocketError.AddressNotAvailable } =>
                $"{addressOptions} names an address that is not on this machine ({exception.Message}). Use one of its "
                + $"addresses, such as {AddressExample}, or http://0.0.0.0:8080 for every interface.",
            FormatException when exception.Message.StartsWith("Invalid url", StringComparison.Ordinal) =>
                $"{WithFullStop(exception.Message)} Use an address such as {AddressExample} in {addressOptions}.",
            InvalidOperationException when exception.Message.StartsWith("Unrecognized scheme in server address", StringComparison.Ordinal) =>
                $"{exception.Message} Use an http:// or https:// address such as {AddressExample} in {addressOptions}.",
            ArgumentOutOfRangeException { ParamName: "port" } =>
                $"A port in {addressOptions} is outside 0 to 65535.",

            // Kestrel's own message advises a developer certificate, which a server cannot use. The address can come from
            // Kestrel:Endpoints as well, so this message does not name the options.
            InvalidOperationException when exception.Message.StartsWith("Unable to configure HTTPS endpoint", StringComparison.Ordinal) =>
                $"An https:// listen address has no certificate. {httpsAdvice}",
            _ => null,
        };
    }

    /// <summary>Whether <paramref name="exception"/> is Kestrel's failure to bind, usually because another process listens on the port.</summary>
    public static bool IsAddressInUse(Exception exception) =>
        exception is IOException && exception.Message.StartsWith("Failed to bind", StringComparison.Ordinal);

    // Kestrel's "Invalid url: '...'" ends without one.
    private static string WithFullStop(string message) => message.EndsWith('.') ? message : message + ".";
}
