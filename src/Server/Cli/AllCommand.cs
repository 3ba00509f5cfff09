using System.CommandLine;
using ContinualServe.Learner;
using ContinualServe.Server.Distribution;
using ContinualServe.Server.Hosting;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Cli;

/// <summary>
/// <c>continualserve all</c>: learner and inference server in one process against a real Kafka cluster. The
/// server loads from the learner's store and swaps each version in directly; versions are still announced,
/// so extra <c>serve</c> replicas can follow this process.
/// </summary>
internal static class AllCommand
{
    public static Command Create()
    {
        var shortcuts = new LearnerShortcuts();
        Option<string> urls = RoleCommandLine.Shortcut(
            "--urls",
            "Listen addresses of inference, health, metrics and the store (urls), http:// or https:// "
                + "(HTTPS needs Kestrel:Certificates:Default:Path); default " + ServeCommand.DefaultUrls + ".");
        Option<string> modelName = RoleCommandLine.Shortcut("--model-name", "Model name in the inference routes (Server:ModelName).");
        Option<string> managementUrls = RoleCommandLine.ManagementUrlsOption();
        Option<string> tokenFile = RoleCommandLine.ManagementTokenFileOption();
        var command = new Command("all", "Run the learner and the inference server in one process against a Kafka cluster.")
        {
            urls, modelName, managementUrls, tokenFile,
        };
        shortcuts.AddTo(command);
        command.TreatUnmatchedTokensAsErrors = false;
        command.SetAction(async (result, cancellation) =>
        {
            if (!RoleCommandLine.TryGetConfigurationArguments(
                result,
                [
                    (urls, ["urls"]),
                    (modelName, ["Server:ModelName"]),
                    (managementUrls, ["Management:Urls"]),
                    (tokenFile, ["Management:TokenFile"]),
                    .. shortcuts.Keys(includeServer: true),
                ],
                out string[] parsed))
            {
                return RoleCommandLine.InvalidArgumentExitCode;
            }

            if (!StrategyPresets.TryExpand(parsed, out string[] arguments, out string? strategyError))
            {
                return await RoleCommandLine.ReportInvalidConfigurationAsync(strategyError).ConfigureAwait(false);
            }

            return await RoleCommandLine.RunAsync(() => Build(arguments), cancellation).ConfigureAwait(false);
        });
        return command;
    }

    internal static WebApplication Build(string[] arguments)
    {
        WebApplication app = ServerHost.Build(arguments, "", pollStore: false, configureBuilder: builder =>
        {
            RoleCommandLine.UseDefaultUrls(builder, ServeCommand.DefaultUrls);
            builder.Services.AddLearnerRole();
            builder.Services.AddOptions<ServerOptions>()
                .PostConfigure<IOptions<LearnerOptions>>((server, learner) => server.StoreDirectory = learner.Value.StoreDirectory);
        });
        app.MapModelStoreApi(() => app.Services.GetRequiredService<ContinualLearner>().Store);
        return app;
    }
}
