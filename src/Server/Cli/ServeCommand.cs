using System.CommandLine;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Hosting;

namespace ContinualServe.Server.Cli;

/// <summary><c>continualserve serve</c>: an inference replica that follows the versions the learner announces.</summary>
internal static class ServeCommand
{
    public const string DefaultUrls = "http://127.0.0.1:8080";

    public static Command Create()
    {
        Option<string> urls = RoleCommandLine.Shortcut(
            "--urls",
            "Listen addresses (configuration key urls), http:// or https:// "
                + "(HTTPS needs Kestrel:Certificates:Default:Path); default " + DefaultUrls + ".");
        Option<string> store = RoleCommandLine.Shortcut("--store", "Local model store directory (Server:StoreDirectory).");
        Option<string> device = RoleCommandLine.Shortcut("--device", "Inference device: auto, cpu, cuda or cuda:N (Server:Device).");
        Option<string> modelName = RoleCommandLine.Shortcut("--model-name", "Model name in the inference routes (Server:ModelName).");
        Option<string> bootstrap = RoleCommandLine.Shortcut(
            "--bootstrap-servers", "Kafka bootstrap servers of the version topic (Distribution:BootstrapServers); unset: poll the store only.");
        Option<string> versionTopic = RoleCommandLine.Shortcut("--version-topic", "Compacted topic of version announcements (Distribution:Topic).");
        Option<string> storeUrl = RoleCommandLine.Shortcut(
            "--store-url", "Learner store URL to download from, overriding the announced one (Distribution:StoreUrl).");
        Option<string> managementUrls = RoleCommandLine.ManagementUrlsOption();
        Option<string> tokenFile = RoleCommandLine.ManagementTokenFileOption();
        Option<string> kafkaConfig = RoleCommandLine.KafkaConfigOption();
        var command = new Command(
            "serve",
            "Serve inference. With Distribution:BootstrapServers set, follow the version topic and download new versions from the learner; "
            + "otherwise swap in newer versions that appear in the store directory (a shared volume).")
        {
            urls, store, device, modelName, bootstrap, versionTopic, storeUrl, managementUrls, tokenFile, kafkaConfig,
        };
        command.TreatUnmatchedTokensAsErrors = false;
        command.SetAction(async (result, cancellation) =>
        {
            if (!RoleCommandLine.TryGetConfigurationArguments(result,
            [
                (urls, ["urls"]),
                (store, ["Server:StoreDirectory"]),
                (device, ["Server:Device"]),
                (modelName, ["Server:ModelName"]),
                (bootstrap, ["Distribution:BootstrapServers"]),
                (versionTopic, ["Distribution:Topic"]),
                (storeUrl, ["Distribution:StoreUrl"]),
                (managementUrls, ["Management:Urls"]),
                (tokenFile, ["Management:TokenFile"]),
                (kafkaConfig, ["Kafka:ConfigFile"]),
            ], out string[] arguments))
            {
                return RoleCommandLine.InvalidArgumentExitCode;
            }

            return await RoleCommandLine.RunAsync(
                () => ServerHost.Build(arguments, "", configureBuilder: builder =>
                {
                    RoleCommandLine.UseDefaultUrls(builder, DefaultUrls);
                    builder.Services.AddVersionSubscriber(builder.Configuration);
                }),
                cancellation).ConfigureAwait(false);
        });
        return command;
    }
}
