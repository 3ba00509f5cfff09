using Confluent.Kafka;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Tests.Promotion;
using ContinualServe.Learner.Training;
using ContinualServe.Model.Store;
using Shouldly;
using Xunit;

namespace ContinualServe.Learner.Tests.Faults;

/// <summary>
/// A round whose evaluation runs longer than max.poll.interval.ms, as a large holdout or golden set on a slow CPU would. An
/// injected wait before each of the first forward batches stretches one round to twice the interval, and the learner
/// must stay in its consumer group: no revocation, no record read twice, and the round's offsets committed.
/// </summary>
[Collection(GoldenSetGaugeGroup.Name)]
public sealed class SlowRoundEvaluationTests : IDisposable
{
    private const string Topic = "slow-round";
    private const int AssignedEventId = 271;
    private const int RevokedEventId = 272;

    // Each delay stays well below max.poll.interval.ms, and together they last twice as long.
    private static readonly TimeSpan BatchDelay = TimeSpan.FromMilliseconds(750);
    private const int SlowBatches = 8;

    private readonly TemporaryDirectory storeDirectory = new("continualserve-slow-round-");

    public void Dispose() => storeDirectory.Dispose();

    // Half of the records go to holdout, about 50 of the first 100, so 4 examples per batch give more than SlowBatches batches.
    [Fact(Timeout = 120_000)]
    public async Task SlowHoldoutEvaluationKeepsGroupMembership()
    {
        await Task.Run(async () =>
        {
            const string groupId = "slow-holdout";
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers, groupId);
            options.HoldoutFraction = 0.5;
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers, GroupMembership.ShortMaxPollInterval());
            learner.EvaluationBatchSize = 4;
            int delayed = 0;
            learner.FaultHooks.BeforeEvaluationBatch = () => DelayFirstBatches(ref delayed);

            await RunTwoRoundsAsync(broker, learner);

            delayed.ShouldBe(SlowBatches, "the first round's holdout evaluation had fewer batches than the test delays");
            AssertStayedInGroup(broker, groupId, learner, loggers);
        });
    }

    // Only the golden-set pass is slowed: the delays start once the golden set has been read.
    [Fact(Timeout = 120_000)]
    public async Task SlowGoldenSetPassKeepsGroupMembership()
    {
        await Task.Run(async () =>
        {
            const string groupId = "slow-golden-set";
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            new GoldenSet
            {
                Examples = Enumerable.Range(0, 40)
                    .Select(index => TestData.Example(TestData.TestSet, index, "golden"))
                    .Select(example => new GoldenExample(example.Label, example.Features))
                    .ToArray(),
                UploadedAt = DateTimeOffset.UtcNow,
            }.Save(storeDirectory.Path);
            LearnerOptions options = Options(broker.BootstrapServers, groupId);
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers, GroupMembership.ShortMaxPollInterval());
            learner.EvaluationBatchSize = 4;
            int delayed = 0;
            bool goldenSetRead = false;
            learner.FaultHooks.BeforeGoldenSetRead = () => Volatile.Write(ref goldenSetRead, true);
            learner.FaultHooks.BeforeEvaluationBatch = () =>
            {
                if (Volatile.Read(ref goldenSetRead))
                {
                    DelayFirstBatches(ref delayed);
                }
            };

            await RunTwoRoundsAsync(broker, learner);

            delayed.ShouldBe(SlowBatches, "the first round's golden-set pass had fewer batches than the test delays");
            AssertStayedInGroup(broker, groupId, learner, loggers);
        });
    }

    // A rebalance while a round evaluates runs the learner's revoke and assign handlers inside the evaluation's polls. The
    // round still publishes and commits the records trained before it, and the learner reads on from its handled position.
    [Fact(Timeout = 120_000)]
    public async Task RebalanceDuringSlowEvaluation()
    {
        await Task.Run(async () =>
        {
            const string groupId = "slow-rebalance";
            using EmbeddedKafkaBroker broker = LearnerHarness.StartBroker(Topic);
            LearnerOptions options = Options(broker.BootstrapServers, groupId);
            options.HoldoutFraction = 0.5;
            var loggers = new RecordingLoggerFactory();
            using var learner = new ContinualLearner(options, loggers);

            // About 50 holdout examples in batches of 1, each held for up to 300 ms, keep the round evaluating for up to 15 s.
            learner.EvaluationBatchSize = 1;
            using var releaseEvaluation = new ManualResetEventSlim();
            int evaluated = 0;
            learner.FaultHooks.BeforeEvaluationBatch = () =>
            {
                Interlocked.Increment(ref evaluated);
                releaseEvaluation.Wait(TimeSpan.FromMilliseconds(300));
            };
            learner.Start();
            await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "first");
            await LearnerHarness.WaitUntilAsync(() => Volatile.Read(ref evaluated) > 0, "the round did not start evaluating");

            int assignedBefore = Count(loggers, AssignedEventId);
            using (IConsumer<Ignore, Ignore> other = new ConsumerBuilder<Ignore, Ignore>(KafkaDefaults.CreateConsumerConfig(broker.BootstrapServers, groupId)).Build())
            {
                other.Subscribe(Topic);
                DateTime deadline = DateTime.UtcNow + LearnerHarness.WaitLimit;
                while (Count(loggers, AssignedEventId) == assignedBefore)
                {
                    DateTime.UtcNow.ShouldBeLessThan(deadline, "the learner was not reassigned when another member joined");
                    other.Consume(TimeSpan.FromMilliseconds(100));
                }

                other.Close();
            }

            await LearnerHarness.WaitUntilAsync(
                () => Count(loggers, AssignedEventId) >= assignedBefore + 2 && LastAssignment(loggers).Contains(Topic, StringComparison.Ordinal),
                "the learner did not get its partition back after the other member left");
            learner.Status.RoundPosition.ShouldBe(0, "the round was still evaluating during the rebalances");
            Count(loggers, RevokedEventId).ShouldBeGreaterThanOrEqualTo(1);

            releaseEvaluation.Set();
            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100, "the evaluated round was not published");
            LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(100, 100), "second");
            await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 200, "the round after the rebalance was not published");
            learner.Status.Consumed.ShouldBe(200, "a record was read twice");
            (learner.Status.Trained + learner.Status.HeldOut).ShouldBe(200, "a record was trained or held out twice");
            learner.Failure.ShouldBeNull();
            GroupMembership.CommittedOffset(broker.BootstrapServers, Topic, groupId).ShouldBe(200);
        });
    }

    // The first round is the slow one. The second shows that the learner reads on from where the first round ended.
    private static async Task RunTwoRoundsAsync(EmbeddedKafkaBroker broker, ContinualLearner learner)
    {
        learner.Start();
        await LearnerHarness.WaitUntilAsync(() => learner.IsReady, "the learner did not become ready");
        LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(0, 100), "first");
        await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 100, "the slow round was not published");
        LearnerHarness.Produce(broker.BootstrapServers, Topic, Enumerable.Range(100, 100), "second");
        await LearnerHarness.WaitUntilAsync(() => learner.Status.RoundPosition == 200, "the round after the slow one was not published");
    }

    private static void DelayFirstBatches(ref int delayed)
    {
        if (Interlocked.Increment(ref delayed) <= SlowBatches)
        {
            Thread.Sleep(BatchDelay);
        }
        else
        {
            Interlocked.Decrement(ref delayed);
        }
    }

    private static int Count(RecordingLoggerFactory loggers, int eventId) =>
        loggers.Logger.Records.Count(record => record.EventId == eventId);

    private static string LastAssignment(RecordingLoggerFactory loggers) =>
        loggers.Logger.Records.Last(record => record.EventId == AssignedEventId).Message;

    private static void AssertStayedInGroup(EmbeddedKafkaBroker broker, string groupId, ContinualLearner learner, RecordingLoggerFactory loggers)
    {
        GroupMembership.AssertStayedInGroup(broker, Topic, groupId, learner, loggers, records: 200);
        (learner.Status.Trained + learner.Status.HeldOut).ShouldBe(200, "a record was trained or held out twice");
    }

    private LearnerOptions Options(string bootstrapServers, string groupId)
    {
        LearnerOptions options = LearnerHarness.Options(
            bootstrapServers, Topic, groupId, storeDirectory.Path, new TrainerOptions { Strategy = ReplayStrategy.Naive }, hiddenSize: 16);

        // The gate's measurements on 100 examples are noisy, and the examples of a rejected round are counted as
        // discarded, not trained, so the checks of Status.Trained would fail.
        options.Promotion.Enabled = false;
        return options;
    }
}
