using ContinualServe.Learner.Kafka;
using ContinualServe.Server.Distribution;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Distribution;

public sealed class KafkaClientPropertiesServiceTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("continualserve-kafka-service-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    // A pipe such as /dev/stdin is empty after its first read, so the test deletes the file after the first read.
    [Fact]
    public void ClientsReuseTheValidatedRead()
    {
        string file = Path.Combine(directory, "client.properties");
        File.WriteAllText(file, "client.id=validated\n");
        IConfiguration configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Kafka:ConfigFile"] = file })
            .Build();
        var services = new ServiceCollection();
        services.AddSingleton(configuration);
        services.AddLogging();
        services.AddKafkaClientProperties();
        using ServiceProvider provider = services.BuildServiceProvider();

        // The start validation of ValidateOnStart reads the options through IOptionsMonitor.
        provider.GetRequiredService<IOptionsMonitor<KafkaOptions>>().Get(Options.DefaultName);
        File.Delete(file);
        KafkaClientProperties properties = provider.GetRequiredService<KafkaClientProperties>();

        properties.Values["client.id"].ShouldBe("validated");
    }
}
