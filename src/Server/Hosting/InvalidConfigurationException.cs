namespace ContinualServe.Server.Hosting;

/// <summary>
/// A setting that cannot be used, found while the host is built or started. The role commands report its message
/// and exit with code 2 instead of printing a stack trace.
/// </summary>
public sealed class InvalidConfigurationException : Exception
{
    public InvalidConfigurationException()
    {
    }

    public InvalidConfigurationException(string message)
        : base(message)
    {
    }

    public InvalidConfigurationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
