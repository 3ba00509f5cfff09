using ContinualServe.Learner;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Publishing;
using ContinualServe.Model;
using ContinualServe.Server.Cli;
using ContinualServe.Server.Hosting;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace ContinualServe.Server.Distribution;

/// <summary>Service registrations of the deployable roles: a learner that announces versions, and replicas that follow them.</summary>
public static class RoleServices
{
    /// <summary>Binds and validates the Distribution section; errors surface when the host starts.</summary>
    public static OptionsBuilder<DistributionOptions> AddDistributionOptions(this IServiceCollection services)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DistributionOptions>, DistributionOptionsValidator>());
        return services.AddOptions<DistributionOptions>()
            .BindConfiguration(DistributionOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
    }

    /// <summary>
    /// Binds and validates the Kafka section, and adds the extra client properties it gives (<see cref="KafkaClientProperties"/>),
    /// read once and logged by name when first needed.
    /// </summary>
    public static IServiceCollection AddKafkaClientProperties(this IServiceCollection services)
    {
        // The all role adds both the learner and the version subscriber, and the section is bound and checked once.
        if (services.Any(descriptor => descriptor.ServiceType == typeof(KafkaClientProperties)))
        {
            return services;
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KafkaOptions>, KafkaOptionsValidator>());
        services.AddOptions<KafkaOptions>()
            .BindConfiguration(KafkaOptions.SectionName)
            .ValidateOnStart();
        services.TryAddSingleton(provider =>
        {
            // The start validation reads the options through IOptionsMonitor, and IOptions would bind and validate a
            // second instance, which reads the file again. A pipe such as /dev/stdin would then be empty the second time.
            KafkaClientProperties properties = provider.GetRequiredService<IOptionsMonitor<KafkaOptions>>().CurrentValue.Load();
            KafkaClientLog.LogExtraProperties(provider.GetRequiredService<ILoggerFactory>().CreateLogger<KafkaClientProperties>(), properties);
            return properties;
        });
        return services;
    }

    /// <summary>
    /// Shortest host shutdown timeout of the learn and all roles: the learner's longest stop and 5 s for the host's
    /// other services.
    /// </summary>
    public static readonly TimeSpan LearnerShutdownTimeout = LearnerHostedService.LongestStop + TimeSpan.FromSeconds(5);

    /// <summary>
    /// Adds the learner, its version publisher and the hosted service that runs them. The version topic
    /// uses the learner's bootstrap servers unless Distribution:BootstrapServers names others.
    /// </summary>
    public static IServiceCollection AddLearnerRole(this IServiceCollection services)
    {
        // The learner's stop can outlast the host's default 30 s shutdown timeout, and a host that gives up first
        // leaves the round being written to the next start. A longer timeout set in configuration stays.
        services.PostConfigure<HostOptions>(host =>
        {
            if (host.ShutdownTimeout < LearnerShutdownTimeout)
            {
                host.ShutdownTimeout = LearnerShutdownTimeout;
            }
        });
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LearnerOptions>, LearnerOptionsValidator>());
        services.AddOptions<LearnerOptions>()
            .BindConfiguration(LearnerOptions.SectionName)
            .PostConfigure<IConfiguration>((learner, configuration) =>
            {
                StrategyPresets.ApplyPreset(learner.Trainer, configuration.GetSection($"{LearnerOptions.SectionName}:{nameof(LearnerOptions.Trainer)}"));
                IConfigurationSection specSection = configuration.GetSection($"{LearnerOptions.SectionName}:{nameof(LearnerOptions.InitialSpec)}");
                learner.InitialSpec = WithConfiguredLists(learner.InitialSpec, specSection);

                // A preset with its own model width (analytic) sets it unless configuration does.
                if (!string.IsNullOrEmpty(learner.Trainer.Preset) && StrategyPresets.Find(learner.Trainer.Preset) is not null
                    && StrategyPresets.HiddenSizes(learner.Trainer.Preset) is { } hiddenSizes
                    && !specSection.GetSection(nameof(ModelSpec.HiddenSizes)).Exists())
                {
                    learner.InitialSpec = learner.InitialSpec with { HiddenSizes = hiddenSizes };
                }
            })
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddKafkaClientProperties();
        services.AddDistributionOptions()
            .PostConfigure<IOptions<LearnerOptions>>((distribution, learner) =>
            {
                if (string.IsNullOrWhiteSpace(distribution.BootstrapServers))
                {
                    distribution.BootstrapServers = learner.Value.BootstrapServers;
                }
            });
        services.AddSingleton(provider =>
        {
            LearnerOptions learner = provider.GetRequiredService<IOptions<LearnerOptions>>().Value;
            return ModelSwapper.OpenStore(
                learner.StoreDirectory,
                () => new ContinualLearner(learner, provider.GetRequiredService<ILoggerFactory>(), provider.GetRequiredService<KafkaClientProperties>()));
        });
        services.AddSingleton(provider =>
        {
            DistributionOptions distribution = provider.GetRequiredService<IOptions<DistributionOptions>>().Value;
            return new ModelVersionPublisher(
                distribution.BootstrapServers,
                distribution,
                provider.GetRequiredService<ILogger<ModelVersionPublisher>>(),
                provider.GetRequiredService<KafkaClientProperties>());
        });
        services.AddHostedService<LearnerHostedService>();
        return services;
    }

    /// <summary>
    /// Replaces the spec's lists with exactly the items configuration gives. The binder appends configured items
    /// to a list's default ones, so HiddenSizes:0=1024 over the default [256, 256] would bind as [256, 256, 1024].
    /// </summary>
    internal static ModelSpec WithConfiguredLists(ModelSpec spec, IConfigurationSection section) => spec with
    {
        InputShape = section.GetSection(nameof(ModelSpec.InputShape)).Get<int[]>() ?? spec.InputShape,
        HiddenSizes = section.GetSection(nameof(ModelSpec.HiddenSizes)).Get<int[]>() ?? spec.HiddenSizes,
        Labels = section.GetSection(nameof(ModelSpec.Labels)).Get<string[]>() ?? spec.Labels,
    };

    /// <summary>
    /// Adds the subscriber that keeps this replica on the newest announced version when
    /// Distribution:BootstrapServers is set; otherwise the replica only polls its store directory.
    /// </summary>
    public static IServiceCollection AddVersionSubscriber(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddDistributionOptions();
        services.AddKafkaClientProperties();
        if (!string.IsNullOrWhiteSpace(configuration[DistributionOptions.SectionName + ":" + nameof(DistributionOptions.BootstrapServers)]))
        {
            services.AddHostedService<ModelVersionSubscriber>();
        }

        return services;
    }
}
