using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ContinualServe.Learner.Checkpoints;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Holdout;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Model.Store;
using Microsoft.Extensions.Logging.Abstractions;
using Shouldly;
using Xunit;
using Xunit.Abstractions;

namespace ContinualServe.IntegrationTests.Reliability;

/// <summary>
/// Crash safety of the learner: a `continualserve learn` child process is killed with SIGKILL at seeded random
/// points while it trains on the first two tasks of the slice, and restarted each time.
/// </summary>
public sealed class LearnerKillTests(ITestOutputHelper output)
{
    private const string Topic = "kill-test";
    private const int Kills = 5;

    [Fact]
    public async Task KilledLearnerTrainsEachExampleOnce()
    {
        string root = Path.Combine(Path.GetTempPath(), "continualserve-tests", Guid.NewGuid().ToString("N"));
        string storeDirectory = Path.Combine(root, "models");
        string checkpointDirectory = Path.Combine(root, "checkpoints");
        using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start();
        broker.CreateTopic(Topic, 1);
        broker.CreateTopic(Topic + ".dlq", 1);
        broker.CreateTopic("model-versions", 1);
        IdxDataset dataset = IdxDataset.LoadFashionMnist(Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist"), training: true);
        var producer = new ExampleProducer(broker.BootstrapServers, Topic, NullLogger.Instance) { MaxLag = 0, MaxTasks = 2 };
        long produced = await producer.ProduceAsync(dataset, null, null, CancellationToken.None);
        var router = new HoldoutRouter(0.1);
        string[] expectedTrained = SplitTasks.OrderByTask(dataset, 2)
            .Select(index => TestIds.Train(index))
            .Where(id => !router.IsHoldout(id))
            .Order(StringComparer.Ordinal)
            .ToArray();

        string[] arguments =
        [
            "--bootstrap-servers", broker.BootstrapServers, "--topic", Topic, "--group", "kill-test",
            "--store", storeDirectory, "--checkpoint-dir", checkpointDirectory, "--training-log", "true",
            "--device", "cpu", "--round-examples", "64", "--replay-capacity", "200", "--session-timeout", "00:00:03",
            "--urls", "http://127.0.0.1:0",
            // A rejected candidate's examples are discarded by design; this test counts crash recovery alone.
            "--Learner:Promotion:Enabled=false",
            // Four steps per batch slow training enough that every kill lands while records remain to be trained.
            "--Learner:Trainer:StepsPerBatch=4",
        ];
        var random = new Random(20261204);
        for (int kill = 1; kill <= Kills; kill++)
        {
            // A learner that trains and writes rounds concurrently can finish the slice before the last kills.
            // A run that starts with every record trained publishes nothing, and is killed once it has started.
            bool finished = FirstOffset(ReadNewestCheckpoint(checkpointDirectory)) == produced;
            string awaited = finished ? "Learner starting" : "Published version";
            using LearnerProcess learner = LearnerProcess.Start(arguments);
            bool logged = await learner.WaitForLinesAsync(awaited, 1, TimeSpan.FromSeconds(60));
            logged.ShouldBeTrue($"run {kill} logged no '{awaited}':\n{string.Join('\n', learner.Lines.TakeLast(30))}");
            int delayMilliseconds = random.Next(0, 400);
            await Task.Delay(delayMilliseconds);
            learner.HasExited.ShouldBeFalse($"run {kill} finished before its kill point");
            learner.KillHard();
            LearnerCheckpoint? reached = ReadNewestCheckpoint(checkpointDirectory);
            output.WriteLine($"kill {kill} after {delayMilliseconds} ms: checkpoint offset {FirstOffset(reached)}");
        }

        using (LearnerProcess final = LearnerProcess.Start(arguments))
        {
            LearnerCheckpoint? last = null;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
            while (DateTime.UtcNow < deadline && FirstOffset(last) != produced)
            {
                await Task.Delay(100);
                last = ReadNewestCheckpoint(checkpointDirectory);
            }

            FirstOffset(last).ShouldBe(produced, string.Join('\n', final.Lines.TakeLast(30)));
            final.KillHard();
        }

        IReadOnlyList<string> trained = TrainingLog.ReadIds(Path.Combine(checkpointDirectory, TrainingLog.FileName));
        string[] repeated = trained.GroupBy(id => id).Where(group => group.Count() > 1).Select(group => group.Key).ToArray();
        repeated.ShouldBeEmpty("examples trained more than once");
        trained.Order(StringComparer.Ordinal).ToArray().ShouldBe(expectedTrained);

        var checkpoints = new LearnerCheckpointStore(checkpointDirectory, 2, NullLogger.Instance);
        LearnerCheckpoint checkpoint = checkpoints.TryLoadLatest()!.Value.Checkpoint;
        checkpoint.ExamplesTrained.ShouldBe(expectedTrained.Length);
        await AssertServesAsync(storeDirectory, checkpoint.ModelVersion);
    }

    private static async Task AssertServesAsync(string storeDirectory, long checkpointVersion)
    {
        ModelVersion newest = new ModelStore(storeDirectory).TryLoadLatest().ShouldNotBeNull();
        newest.Number.ShouldBeGreaterThanOrEqualTo(checkpointVersion);
        await using RunningStoreServer server = await RunningStoreServer.StartAsync(storeDirectory, newest.Spec.Name);
        using HttpResponseMessage response = await server.Client.PostAsJsonAsync(
            $"v2/models/{newest.Spec.Name}/infer",
            new { inputs = new[] { new { name = "input", datatype = "FP32", shape = new[] { 1, 784 }, data = new float[784] } } });
        response.StatusCode.ShouldBe(HttpStatusCode.OK);
        JsonElement body = await response.Content.ReadFromJsonAsync<JsonElement>();
        body.GetProperty("model_version").GetString().ShouldBe(newest.Number.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    private static long? FirstOffset(LearnerCheckpoint? checkpoint) =>
        checkpoint is { Offsets.Count: > 0 } ? checkpoint.Offsets[0].Offset : null;

    // The learner renames complete checkpoints into place, so the newest c* directory is complete.
    // Retention may delete a directory while it is read, and the next poll then reads again.
    private static LearnerCheckpoint? ReadNewestCheckpoint(string directory)
    {
        try
        {
            string? newest = Directory.Exists(directory)
                ? Directory.EnumerateDirectories(directory, "c*").Order(StringComparer.Ordinal).LastOrDefault()
                : null;
            return newest is null
                ? null
                : JsonSerializer.Deserialize<LearnerCheckpoint>(File.ReadAllBytes(Path.Combine(newest, LearnerCheckpoint.MetadataFileName)), LearnerCheckpoint.JsonOptions);
        }
        catch (IOException)
        {
            return null;
        }
    }
}
