using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// A learner that stops on an error and whose cleanup then fails too, because the consumer's close throws or the round
/// write in flight fails with an error that is not an I/O error. The first error must stay the learner's failure and
/// the one logged as such, and the cleanup's error is logged on its own. A close that fails on a requested stop is
/// only a warning.
/// </summary>
public sealed class CleanupFailureTests : IDisposable
{
    private const string Topic = "cleanup-failure";
    private const int LearnerFailedEventId = 263;
    private const int FatalKafkaErrorEventId = 211;
    private const int CleanupFailedEventId = 265;
    private const int CloseFailedOnStopEventId = 270;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-cleanup-failure-");

    public void Dispose() => storeDirectory.Dispose();

    [Fact(Timeout = 120_000)]
    public async Task CloseFailureKeepsOriginalError()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            string checkpoints = Path.Combine(storeDirectory.Path, "checkpoints");
            LearnerOptions options = NaiveOptions(broker.BootstrapServers, "cleanup-close");
            options.Checkpoint.Directory = checkpoints;
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            var closeError = new KafkaException(new Error(ErrorCode.Local_Fatal, "injected failure of the consumer's close", isFatal: true));
            learner.FaultHooks.BeforeLeaveGroup = () => throw closeError;
            learner.Start();
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "before");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100, "the first round was not published");

            // A regular file in place of the checkpoint directory fails the next round's write with an IOException.
            Directory.Delete(checkpoints, recursive: true);
            await File.WriteAllTextAsync(checkpoints, "a file where the checkpoint directory was");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(100, 100), "after");
            await LearnerHarness.WaitUntilAsync(() => learner.Failure is not null, "the learner did not stop on the failed checkpoint write");

            learner.Failure.ShouldBeAssignableTo<IOException>();
            IReadOnlyList<LogRecord> records = loggers.Logger.Records;
            LogRecord failed = records.Single(record => record.EventId == LearnerFailedEventId);
            failed.Exception.ShouldBeSameAs(learner.Failure);
            records.ShouldNotContain(record => record.EventId == FatalKafkaErrorEventId);
            LogRecord cleanup = records.Single(record => record.EventId == CleanupFailedEventId);
            cleanup.Exception.ShouldBeSameAs(closeError);
            cleanup.Message.ShouldContain("cleanup-close");
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task RoundWriteFailureKeepsOriginalError()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = NaiveOptions(broker.BootstrapServers, "cleanup-write");
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            using var writeStarted = new ManualResetEventSlim();
            using var releaseWrite = new ManualResetEventSlim();
            var writeError = new InvalidOperationException("injected failure of the round write");
            var original = new InvalidDataException("injected failure on the learner thread");
            int thrown = 0;

            // The first round's write blocks until the learner thread has failed, and then fails with a non-I/O error.
            learner.FaultHooks.BeforeRoundWrite = () =>
            {
                writeStarted.Set();
                releaseWrite.Wait(TimeSpan.FromSeconds(30));
                throw writeError;
            };
            learner.FaultHooks.BeforeConsume = () =>
            {
                if (writeStarted.IsSet && Interlocked.Exchange(ref thrown, 1) == 0)
                {
                    releaseWrite.Set();
                    throw original;
                }
            };
            learner.Start();
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "only");
            await LearnerHarness.WaitUntilAsync(() => learner.Failure is not null, "the learner did not stop on the injected error");

            learner.Failure.ShouldBeSameAs(original);
            IReadOnlyList<LogRecord> records = loggers.Logger.Records;
            LogRecord failed = records.Single(record => record.EventId == LearnerFailedEventId);
            failed.Exception.ShouldBeSameAs(original);
            LogRecord cleanup = records.Single(record => record.EventId == CleanupFailedEventId);
            cleanup.Exception.ShouldBeSameAs(writeError);
            learner.Status.RoundPosition.ShouldBe(0, "the failed round's offsets must not be committed");
        });
    }

    // A requested stop loses nothing when the consumer's close fails, because every committed offset belongs to a
    // checkpoint on disk. The failure is a warning, and the learner reports no failure, so the process exits with 0.
    [Fact(Timeout = 120_000)]
    public async Task CloseFailureOnStopIsClean()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = NaiveOptions(broker.BootstrapServers, "cleanup-stop");
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            var closeError = new KafkaException(new Error(ErrorCode.Local_Transport, "injected failure of the consumer's close"));
            Exception? raised = null;
            learner.Failed += exception => raised = exception;
            learner.FaultHooks.BeforeLeaveGroup = () => throw closeError;
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsRunning, "the learner did not start consuming");

            learner.Stop(TimeSpan.FromSeconds(30)).ShouldBeTrue("the learner did not stop");

            learner.Failure.ShouldBeNull();
            raised.ShouldBeNull();
            IReadOnlyList<LogRecord> records = loggers.Logger.Records;
            records.ShouldNotContain(record => record.EventId == LearnerFailedEventId);
            records.ShouldNotContain(record => record.EventId == CleanupFailedEventId);
            LogRecord warning = records.Single(record => record.EventId == CloseFailedOnStopEventId);
            warning.Level.ShouldBe(LogLevel.Warning);
            warning.Exception.ShouldBeSameAs(closeError);
            warning.Message.ShouldContain("cleanup-stop");
        });
    }

    // On a requested stop the consumer's close fails, which is only a warning, and then disposing a Kafka client fails.
    // That error is then the first one, so it becomes the learner's failure.
    [Fact(Timeout = 120_000)]
    public async Task DisposeFailureAfterCloseFailure()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = NaiveOptions(broker.BootstrapServers, "cleanup-leave");
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            var closeError = new KafkaException(new Error(ErrorCode.Local_Transport, "injected failure of the consumer's close"));
            var disposeError = new InvalidOperationException("injected failure of the dead-letter producer's dispose");
            learner.FaultHooks.BeforeLeaveGroup = () => throw closeError;
            learner.FaultHooks.BeforeDeadLetterClose = () => throw disposeError;
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsRunning, "the learner did not start consuming");

            learner.Stop(TimeSpan.FromSeconds(30)).ShouldBeTrue("the learner did not stop");

            learner.Failure.ShouldBeSameAs(disposeError);
            IReadOnlyList<LogRecord> records = loggers.Logger.Records;
            LogRecord failed = records.Single(record => record.EventId == LearnerFailedEventId);
            failed.Exception.ShouldBeSameAs(disposeError);
            LogRecord warning = records.Single(record => record.EventId == CloseFailedOnStopEventId);
            warning.Exception.ShouldBeSameAs(closeError);
            records.ShouldNotContain(record => record.EventId == CleanupFailedEventId);
        });
    }

    // A close that fails with an error other than Kafka's (a rebalance handler that throws) is the learner's failure,
    // and a dispose that throws after it does not replace it.
    [Fact(Timeout = 120_000)]
    public async Task UnexpectedCloseFailureIsKept()
    {
        await Task.Run(async () =>
        {
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = NaiveOptions(broker.BootstrapServers, "cleanup-leave-unexpected");
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);
            var closeError = new InvalidOperationException("injected failure of a rebalance handler during the close");
            var disposeError = new InvalidOperationException("injected failure of the dead-letter producer's dispose");
            learner.FaultHooks.BeforeLeaveGroup = () => throw closeError;
            learner.FaultHooks.BeforeDeadLetterClose = () => throw disposeError;
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.IsRunning, "the learner did not start consuming");

            learner.Stop(TimeSpan.FromSeconds(30)).ShouldBeTrue("the learner did not stop");

            learner.Failure.ShouldBeSameAs(closeError);
            loggers.Logger.Records.ShouldNotContain(record => record.EventId == CloseFailedOnStopEventId);
        });
    }

    private LearnerOptions NaiveOptions(string bootstrapServers, string groupId) =>
        LearnerHarness.Options(bootstrapServers, Topic, groupId, storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);
}
