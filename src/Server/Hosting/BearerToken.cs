using System.Security.Cryptography;
using System.Text;

namespace ContinualServe.Server.Hosting;

/// <summary>
/// A bearer token that guards an API (the management API, the learner's model store). Only its SHA-256 is kept, and a
/// presented token is hashed and compared in constant time, so neither the comparison time nor the token's length
/// reveals anything to an attacker.
/// </summary>
public sealed class BearerToken
{
    private const int MinimumLength = 16;
    private readonly byte[] expectedHash;

    private BearerToken(string token) => expectedHash = SHA256.HashData(Encoding.UTF8.GetBytes(token));

    /// <summary>
    /// Reads the token of <paramref name="purpose"/> (for example "management") from <paramref name="tokenFile"/>, or
    /// when no file is given from the environment variable <paramref name="environmentVariable"/>, and returns null when
    /// neither is set.
    /// </summary>
    /// <exception cref="InvalidConfigurationException">
    /// The file cannot be read or is blank, or the token is shorter than 16 characters or holds a character outside printable ASCII.
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
    /// The file cannot be read or is blank, or the token is shorter than 16 characters or holds a character outside printable ASCII.
    /// </exception>
    public static string? Read(string tokenFile, string environmentVariable, string purpose)
    {
        string? token = null;
        string source = "";
        if (!string.IsNullOrEmpty(tokenFile))
        {
            try
            {
                token = File.ReadAllText(tokenFile).Trim();
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
            {
                throw new InvalidConfigurationException(
                    $"The {purpose} token file {tokenFile} cannot be read: {exception.Message}", exception);
            }

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

        // HttpClient refuses line breaks and non-ASCII characters in header values, so a client could never send such a
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

    public bool Matches(ReadOnlySpan<char> presented)
    {
        byte[] presentedHash = SHA256.HashData(Encoding.UTF8.GetBytes(presented.ToArray()));
        return CryptographicOperations.FixedTimeEquals(presentedHash, expectedHash);
    }
}
