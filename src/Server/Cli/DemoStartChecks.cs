using System.Globalization;
using ContinualServe.Model;
using Microsoft.AspNetCore.Http;

namespace ContinualServe.Server.Cli;

/// <summary>
/// Checks of the demo's --urls and --device values before the demo starts, so that the demo exits with the
/// invalid-configuration code and one line instead of a stack trace. <see cref="ListenFailures"/> words the failures
/// that Kestrel finds only when it starts listening.
/// </summary>
internal static class DemoStartChecks
{
    private const string UrlsExample = "http://127.0.0.1:8080";

    /// <summary>
    /// Returns an error for the first listen address in <paramref name="urls"/> (separated by ';') that Kestrel cannot
    /// listen on: one it cannot parse, a scheme other than http or https, or a port outside 0 to 65535. Returns null when
    /// all are valid.
    /// </summary>
    public static string? FindInvalidUrls(string? urls)
    {
        string[] addresses = (urls ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (addresses.Length == 0)
        {
            return $"--urls is empty. Give a listen address such as {UrlsExample}.";
        }

        foreach (string address in addresses)
        {
            BindingAddress parsed;
            try
            {
                parsed = BindingAddress.Parse(address);
            }
            catch (FormatException)
            {
                return $"--urls: '{address}' is not a valid listen address. Use one such as {UrlsExample}.";
            }

            if (parsed.Scheme is not ("http" or "https"))
            {
                return $"--urls: '{address}' has the scheme '{parsed.Scheme}', but only http:// and https:// are supported.";
            }

            if (parsed.Port is < 0 or > 65535)
            {
                return string.Create(CultureInfo.InvariantCulture, $"--urls: the port of '{address}' is {parsed.Port}, outside 0 to 65535.");
            }
        }

        return null;
    }

    /// <summary>Returns why <paramref name="device"/> cannot be used on this machine, or null when it can.</summary>
    public static string? FindInvalidDevice(string device)
    {
        try
        {
            DeviceSelector.Resolve(device);
            return null;
        }
        catch (ArgumentException exception)
        {
            return "--device: " + CommandLine.MessageWithoutParameter(exception);
        }
        catch (InvalidOperationException exception)
        {
            return "--device: " + exception.Message;
        }
    }
}
