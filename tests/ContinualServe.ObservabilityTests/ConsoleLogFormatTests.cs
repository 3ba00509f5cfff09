using ContinualServe.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using Shouldly;
using Xunit;

namespace ContinualServe.ObservabilityTests;

public sealed class ConsoleLogFormatTests
{
    [Fact]
    public async Task JsonFormatSelectsJsonFormatter()
    {
        await using WebApplication app = ServerHost.Build(["--Logging:Format=json"], "http://127.0.0.1:0", pollStore: false);

        app.Services.GetRequiredService<IOptions<ConsoleLoggerOptions>>().Value.FormatterName.ShouldBe(ConsoleFormatterNames.Json);
    }

    [Fact]
    public async Task DefaultFormatStaysSimple()
    {
        await using WebApplication app = ServerHost.Build([], "http://127.0.0.1:0", pollStore: false);

        app.Services.GetRequiredService<IOptions<ConsoleLoggerOptions>>().Value.FormatterName.ShouldBe(ConsoleFormatterNames.Simple);
    }

    [Fact]
    public void UnknownFormatIsRejected()
    {
        Should.Throw<InvalidConfigurationException>(() => ServerHost.Build(["--Logging:Format=xml"], "http://127.0.0.1:0", pollStore: false))
            .Message.ShouldContain("xml");
    }
}
