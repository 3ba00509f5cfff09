using System.Security.Cryptography;
using System.Text;
using ContinualServe.Model;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// A bearer token that guards an API (the management API, the learner's model store). Only its SHA-256 is kept, and a
/// presented token is hashed and compared in constant time, so neither the comparison time nor the token's length
/// reveals anything to an attacker.
/// </summary>
public sealed class BearerToken
{
    private const int MinimumLength = 16;

    // Kestrel rejects a request whose headers together exceed 32 KiB (KestrelServerLimits.MaxRequestHeadersTotalSize)
    // with 431, and nginx by default rejects a header field over 8 KiB with 400 (large_client_header_buffers 4 8k).
    // A longer token would pass the start, but clients could not send it.
    private const int MaximumLength = 4096;

    // A token file may contain whitespace around the token. The cap keeps a setting that names a large file by mistake
    // (a log, a device such as /dev/zero) from being read into memory whole.
    private const int MaximumFileLength = 64 * 1024;
    private readonly byte[] expectedHash;

    private BearerToken(string token) => expectedHash = SHA256.HashData(Encoding.UTF8.GetBytes(token));

    /// <summary>
    /// Reads the token of <paramref name="purpose"/> (for example "management") from <paramref name="tokenFile"/>, or
    /// when no file is given from the environment variable <paramref name="environmentVariable"/>, and returns null when
    /// neither is set.
    /// </summary>
    /// <exception cref="InvalidConfigurationException">
    /// The file cannot be read, is a directory, has more than 65,536 characters or is blank, or the token is shorter
    /// than 16 or longer than 4096 characters or contains a character outside printable ASCII.
    /// </exception>
    public static BearerToken? TryLoad(string tokenFile, string environmentVariable, string purpose)
    {
        string? token = Read(tokenFile, environmentVariable, purpose);
        return token is null ? null : new BearerToken(token);
    }

    /// <summary>
    /// Returns the token itself, for a client that sends it, read as <see cref="TryLoad"/> reads it, or null when
    /// neither the file nor the variable is set.
    /// </summary>
    /// <exception cref="InvalidConfigurationException">
    /// The file cannot be read, is a directory, has more than 65,536 characters or is blank, or the token is shorter
    /// than 16 or longer than 4096 characters or contains a character outside printable ASCII.
    /// </exception>
    public static string? Read(string tokenFile, string environmentVariable, string purpose)
    {
        string? token = null;
        string source = "";
        if (!string.IsNullOrEmpty(tokenFile))
        {
            token = ReadFile(tokenFile, purpose).Trim();
            source = "file " + tokenFile;
        }
        else if (!string.IsNullOrEmpty(environmentVariable))
        {
            token = Environment.GetEnvironmentVariable(environmentVariable)?.Trim();
            source = "environment variable " + environmentVariable;
        }

        if (string.IsNullOrEmpty(token))
        {
            // A blank file means a token was meant but not written, so it stops the start instead of leaving the API open.
            return string.IsNullOrEmpty(tokenFile)
                ? null
                : throw new InvalidConfigurationException(
                    $"The {purpose} token file {tokenFile} is empty; write a token of at least {MinimumLength} characters to it, or remove the setting.");
        }

        if (token.Length < MinimumLength)
        {
            throw new InvalidConfigurationException($"The {purpose} token from {source} has {token.Length} characters; use at least {MinimumLength}.");
        }

        if (token.Length > MaximumLength)
        {
            throw new InvalidConfigurationException(
                $"The {purpose} token from {source} has {token.Length} characters; use at most {MaximumLength}, because "
                + "servers and proxies reject longer request headers.");
        }

        // HttpClient rejects line breaks and non-ASCII characters in header values, so a client could never send such a
        // token. The message leaves the token out.
        if (token.Any(character => character is < ' ' or > '~'))
        {
            throw new InvalidConfigurationException(
                $"The {purpose} token from {source} contains a character outside printable ASCII (a line break, a tab, a control "
                + "character or a non-ASCII letter), which clients cannot send in an HTTP header; use printable ASCII only, "
                + "for example the output of 'openssl rand -hex 32'.");
        }

        return token;
    }

    /// <summary>Reads <paramref name="tokenFile"/>, at most <see cref="MaximumFileLength"/> characters of it.</summary>
    /// <exception cref="InvalidConfigurationException">The path is a directory, the file cannot be read, or it is too large.</exception>
    private static string ReadFile(string tokenFile, string purpose)
    {
        // Opening a directory fails with "Access to the path is denied", which sends the operator to the permissions.
        if (Directory.Exists(tokenFile))
        {
            throw new InvalidConfigurationException(
                $"The {purpose} token file {tokenFile} is a directory; set the path of the file that contains the token, "
                + "for example the key's file inside a mounted Kubernetes Secret.");
        }

        string? text;
        try
        {
            text = BoundedTextFile.ReadAtMost(tokenFile, MaximumFileLength);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            throw new InvalidConfigurationException(
                $"The {purpose} token file {tokenFile} cannot be read: {exception.Message}", exception);
        }

        return text ?? throw new InvalidConfigurationException(
            $"The {purpose} token file {tokenFile} is larger than {MaximumFileLength} characters, so it is not a token "
            + $"file; set the path of a file that contains only the token (at most {MaximumLength} characters).");
    }

    /// <summary>
    /// Returns the error for a <paramref name="purpose"/> token that the setting <paramref name="requireSetting"/>
    /// requires but neither <paramref name="fileSetting"/> nor <paramref name="environmentVariable"/> contains.
    /// </summary>
    public static string MissingRequiredMessage(string purpose, string requireSetting, string fileSetting, string environmentVariable, string withoutToken) =>
        $"{requireSetting} is true, but neither {fileSetting} nor the environment variable {environmentVariable} contains a {purpose} "
        + $"token. Set one of them ({MinimumLength} to {MaximumLength} printable ASCII characters), or set {requireSetting} to false "
        + $"{withoutToken}.";

    public bool Matches(ReadOnlySpan<char> presented)
    {
        byte[] presentedHash = SHA256.HashData(Encoding.UTF8.GetBytes(presented.ToArray()));
        return CryptographicOperations.FixedTimeEquals(presentedHash, expectedHash);
    }
}
