namespace ContinualServe.Server.Demo;

/// <summary>Error that ends the demo because its learner stopped on an error, which is the inner exception.</summary>
public sealed class DemoLearnerFailedException : Exception
{
    public DemoLearnerFailedException()
        : base("The demo's learner stopped on an error.")
    {
    }

    public DemoLearnerFailedException(string message)
        : base(message)
    {
    }

    public DemoLearnerFailedException(Exception failure)
        : this("The demo stopped because its learner failed: " + failure?.Message, failure)
    {
    }

    public DemoLearnerFailedException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
