using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace ContinualServe.Learner;

/// <summary>
/// The learner's exit on an error. Its cleanup (the round write still in flight, the consumer's close) can fail as
/// well, often because of the same fault, and such a failure is logged on its own so that it never hides the first error.
/// </summary>
public sealed partial class ContinualLearner
{
    // The error that ended the consume loop, kept because a cleanup step that throws after it would replace it.
    private Exception? firstFailure;

    /// <summary>
    /// Waits for the round write in flight and leaves the consumer group after <paramref name="failure"/> ended the
    /// consume loop. A step that throws is logged and the next one still runs, because the caller rethrows <paramref name="failure"/>.
    /// </summary>
    private void CleanUpAfterFailure(IConsumer<byte[]?, byte[]?> consumer, Exception failure)
    {
        try
        {
            WaitForPublishing();
        }
        catch (Exception exception)
        {
            LogCleanupFailed(logger, exception, "waiting for the round write in flight", failure.GetType().Name, exception.Message);
        }

        try
        {
            LeaveGroup(consumer);
        }
        catch (Exception exception)
        {
            LogCleanupFailed(logger, exception, $"leaving consumer group {options.GroupId}", failure.GetType().Name, exception.Message);
        }
    }

    private void LogFailure(Exception failure)
    {
        if (failure is KafkaException kafkaException && kafkaException.Error.IsFatal)
        {
            LogFatalKafkaError(logger, failure, kafkaException.Error.Code);
            return;
        }

        // Before this catch an unhandled error ended the whole process, and in the all role the requests in flight with
        // it. The host now stops the process in order, and a restart continues from the newest checkpoint.
        LogLearnerFailed(logger, failure, failure.Message);
    }

    [LoggerMessage(EventId = 265, Level = LogLevel.Error, Message = "The learner is stopping on a {FailureType}, which is logged as its failure, and {Step} failed as well: {Reason}")]
    private static partial void LogCleanupFailed(ILogger logger, Exception exception, string step, string failureType, string reason);
}
