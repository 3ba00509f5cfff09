using System.Security.Cryptography;
using System.Text;

namespace ContinualServe.Server.Management;

/// <summary>
/// The management bearer token. Only its SHA-256 is kept, and a presented token is hashed and compared in
/// constant time, so neither the comparison time nor the token's length reveals anything to an attacker.
/// </summary>
public sealed class ManagementToken
{
    private const int MinimumLength = 16;
    private readonly byte[] expectedHash;

    private ManagementToken(string token) => expectedHash = SHA256.HashData(Encoding.UTF8.GetBytes(token));

    /// <summary>
    /// Reads the token from <see cref="ManagementOptions.TokenFile"/> or the environment variable; returns
    /// null when neither is set. Throws <see cref="Hosting.InvalidConfigurationException"/> when the file cannot be
    /// read or the token is shorter than 16 characters.
    /// </summary>
    public static ManagementToken? TryLoad(ManagementOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string? token = null;
        string source = "";
        if (!string.IsNullOrEmpty(options.TokenFile))
        {
            try
            {
                token = File.ReadAllText(options.TokenFile).Trim();
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
            {
                throw new Hosting.InvalidConfigurationException(
                    $"The management token file {options.TokenFile} cannot be read: {exception.Message}", exception);
            }

            source = "file " + options.TokenFile;
        }
        else if (!string.IsNullOrEmpty(options.TokenEnvironmentVariable))
        {
            token = Environment.GetEnvironmentVariable(options.TokenEnvironmentVariable)?.Trim();
            source = "environment variable " + options.TokenEnvironmentVariable;
        }

        if (string.IsNullOrEmpty(token))
        {
            return null;
        }

        if (token.Length < MinimumLength)
        {
            throw new Hosting.InvalidConfigurationException($"The management token from {source} has {token.Length} characters; use at least {MinimumLength}.");
        }

        return new ManagementToken(token);
    }

    public bool Matches(ReadOnlySpan<char> presented)
    {
        byte[] presentedHash = SHA256.HashData(Encoding.UTF8.GetBytes(presented.ToArray()));
        return CryptographicOperations.FixedTimeEquals(presentedHash, expectedHash);
    }
}
