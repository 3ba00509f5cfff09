namespace ContinualServe.Learner;

/// <summary>
/// Error raised when the model store or the learner checkpoint does not fit the configured strategy, for example a
/// convolutional version under the analytic strategy, when the examples topic is not the one the checkpoint read, or
/// when a directory is at the path of the learner's lock file. A restart with the same settings fails the same way.
/// </summary>
public sealed class IncompatibleStateException : Exception
{
    public IncompatibleStateException()
    {
    }

    public IncompatibleStateException(string message)
        : base(message)
    {
    }

    public IncompatibleStateException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
