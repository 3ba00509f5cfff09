namespace ContinualServe.Learner;

/// <summary>Error raised when another learner holds the model store's <see cref="StoreWriterLock"/>.</summary>
public sealed class StoreInUseException : IOException
{
    public StoreInUseException()
    {
    }

    public StoreInUseException(string message)
        : base(message)
    {
    }

    public StoreInUseException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
