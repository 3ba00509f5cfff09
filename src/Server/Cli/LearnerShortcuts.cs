using System.CommandLine;

namespace ContinualServe.Server.Cli;

/// <summary>Named options of the learner roles and the configuration keys each one sets.</summary>
internal sealed class LearnerShortcuts
{
    private readonly Option<string> bootstrap = RoleCommandLine.Shortcut(
        "--bootstrap-servers", "Kafka bootstrap servers, host:port[,host:port] (Learner:BootstrapServers).");

    private readonly Option<string> kafkaConfig = RoleCommandLine.KafkaConfigOption();

    private readonly Option<string> topic = RoleCommandLine.Shortcut("--topic", "Topic of labeled examples (Learner:Topic).");

    private readonly Option<string> group = RoleCommandLine.Shortcut("--group", "Kafka consumer group of the learner (Learner:GroupId).");

    private readonly Option<string> store = RoleCommandLine.Shortcut("--store", "Model store directory (Learner:StoreDirectory).");

    private readonly Option<string> device = RoleCommandLine.Shortcut("--device", "Training device: auto, cpu, cuda or cuda:N (Learner:Device).");

    private readonly Option<string> strategy = RoleCommandLine.Shortcut(
        "--strategy",
        "Strategy, named as in 'experiment' (naive, er, der, derpp, lwf, er-lwf, er-ace, best, analytic) or as Learner:Trainer:Strategy "
        + "(Naive, ExperienceReplay, Der, DerPlusPlus, Analytic). A named strategy also sets the trainer settings it changes, "
        + "and analytic its model width.");

    private readonly Option<string> replayCapacity = RoleCommandLine.Shortcut(
        "--replay-capacity", "Replay buffer capacity, in examples (Learner:Trainer:ReplayCapacity).");

    private readonly Option<string> seed = RoleCommandLine.Shortcut("--seed", "Seed of weight initialization and replay sampling (Learner:Trainer:Seed).");

    private readonly Option<string> versionTopic = RoleCommandLine.Shortcut(
        "--version-topic", "Compacted topic of version announcements (Distribution:Topic).");

    private readonly Option<string> storeUrl = RoleCommandLine.Shortcut(
        "--store-url", "URL at which replicas reach this learner's store, announced with each version (Distribution:StoreUrl).");

    private readonly Option<string> checkpointDirectory = RoleCommandLine.Shortcut(
        "--checkpoint-dir", "Learner checkpoint directory; default learner-checkpoint inside the store (Learner:Checkpoint:Directory).");

    private readonly Option<string> trainingLog = RoleCommandLine.Shortcut(
        "--training-log", "true to append every trained example id to trained-ids.log beside the checkpoints (Learner:Checkpoint:WriteTrainingLog).");

    private readonly Option<string> roundExamples = RoleCommandLine.Shortcut(
        "--round-examples", "Trained examples per round: evaluate, publish, checkpoint, commit (Learner:RoundExamples).");

    private readonly Option<string> sessionTimeout = RoleCommandLine.Shortcut(
        "--session-timeout", "Kafka consumer session timeout as hh:mm:ss (Learner:SessionTimeout).");

    public void AddTo(Command command)
    {
        ArgumentNullException.ThrowIfNull(command);
        foreach (Option<string> option in new[]
        {
            bootstrap, kafkaConfig, topic, group, store, device, strategy, replayCapacity, seed, versionTopic, storeUrl,
            checkpointDirectory, trainingLog, roundExamples, sessionTimeout,
        })
        {
            command.Options.Add(option);
        }
    }

    /// <summary>
    /// Returns each option with its keys. With <paramref name="includeServer"/> (the all role), --store and --device also
    /// set the server's keys, so both halves of the process agree.
    /// </summary>
    public IEnumerable<(Option<string> Option, string[] Keys)> Keys(bool includeServer)
    {
        yield return (bootstrap, ["Learner:BootstrapServers"]);
        yield return (kafkaConfig, ["Kafka:ConfigFile"]);
        yield return (topic, ["Learner:Topic"]);
        yield return (group, ["Learner:GroupId"]);
        yield return (store, includeServer ? ["Learner:StoreDirectory", "Server:StoreDirectory"] : ["Learner:StoreDirectory"]);
        yield return (device, includeServer ? ["Learner:Device", "Server:Device"] : ["Learner:Device"]);
        yield return (strategy, ["Learner:Trainer:Strategy"]);
        yield return (replayCapacity, ["Learner:Trainer:ReplayCapacity"]);
        yield return (seed, ["Learner:Trainer:Seed"]);
        yield return (versionTopic, ["Distribution:Topic"]);
        yield return (storeUrl, ["Distribution:StoreUrl"]);
        yield return (checkpointDirectory, ["Learner:Checkpoint:Directory"]);
        yield return (trainingLog, ["Learner:Checkpoint:WriteTrainingLog"]);
        yield return (roundExamples, ["Learner:RoundExamples"]);
        yield return (sessionTimeout, ["Learner:SessionTimeout"]);
    }
}
