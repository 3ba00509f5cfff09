using System.CommandLine;
using System.CommandLine.Invocation;
using System.Runtime.InteropServices;
using Confluent.Kafka;
using ContinualServe.Learner;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;
using ContinualServe.Learner.Training;
using ContinualServe.Server.Demo;
using ContinualServe.Server.Hosting;
using Spectre.Console;

namespace ContinualServe.Server.Cli;

/// <summary>The <c>continualserve</c> command line: one executable whose subcommand picks the role.</summary>
public static class CommandLine
{
    private static readonly Option<string> DeviceOption = new("--device")
    {
        Description = "Tensor device: auto (CUDA when available), cpu, cuda or cuda:N.",
        DefaultValueFactory = _ => "auto",
    };

    internal static readonly Option<string> BootstrapOption = WithBootstrapCheck(new("--bootstrap-servers")
    {
        Description = "Kafka bootstrap servers, host:port[,host:port].",
        Required = true,
    });

    internal static readonly Option<string> TopicOption = new("--topic")
    {
        Description = "Kafka topic of labeled examples.",
        DefaultValueFactory = _ => "fashion-mnist",
    };

    private static readonly Option<string> StoreOption = new("--store")
    {
        Description = "Model store directory.",
        DefaultValueFactory = _ => "models",
    };

    internal static readonly Option<string> DataOption = new("--data")
    {
        Description = "Directory with the Fashion-MNIST IDX files (.gz or plain).",
        DefaultValueFactory = _ => DemoOptions.DefaultDataDirectory,
    };

    private static readonly Option<string> UrlsOption = new("--urls")
    {
        Description = "HTTP listen address of the inference server.",
        DefaultValueFactory = _ => "http://127.0.0.1:8080",
    };

    private static readonly Option<string> StrategyOption = new("--strategy")
    {
        Description = "Strategy, named as in 'experiment': naive, er, der, derpp, lwf, er-lwf, er-ace, best or analytic. "
            + "The learner's setting names (Naive, ExperienceReplay, Der, DerPlusPlus, Analytic) are accepted too.",
        DefaultValueFactory = _ => "derpp",
    };

    private static readonly Option<int> ReplayCapacityOption = new("--replay-capacity")
    {
        Description = "Replay buffer capacity, in examples.",
        DefaultValueFactory = _ => 500,
    };

    internal static readonly Option<string> RecordFormatOption = WithChoices(new("--record-format")
    {
        Description = "Record format: json, or binary (one byte per pixel, about a third of the JSON size for Fashion-MNIST images). The learner reads both.",
        DefaultValueFactory = _ => "json",
    }, "json", "binary");

    private static readonly Option<int> SeedOption = new("--seed")
    {
        Description = "Seed of weight initialization and replay sampling.",
        DefaultValueFactory = _ => 1,
    };

    private const string VersionTopic = "model-versions";

    private const string DemoHttpsAdvice = "The demo configures no certificate, so use an http:// address in --urls.";

    public static async Task<int> RunAsync(string[] args)
    {
        var root = new RootCommand("ContinualServe: a model server that keeps learning from a Kafka stream without forgetting.")
        {
            DemoCommand(),
            ServeCommand.Create(),
            LearnCommand.Create(),
            AllCommand.Create(),
            BrokerCommand(),
            ProduceCommand.Create(),
            BenchCommand.Create(),
            ExperimentCommand.Create(),
        };
        ParseResult parse = root.Parse(args);
        int exitCode = await parse.InvokeAsync().ConfigureAwait(false);

        // System.CommandLine 2.0.0's ParseErrorAction writes the errors to stderr and help to stdout, then returns 1.
        // Invalid arguments exit with the invalid-configuration code instead, so that 1 keeps meaning a failure after
        // the start.
        return parse.Action is ParseErrorAction ? RoleCommandLine.InvalidArgumentExitCode : exitCode;
    }

    private static Command DemoCommand()
    {
        StrategyOption.Validators.Add(option =>
        {
            string? name = option.GetValueOrDefault<string>();
            if (name is not null && StrategyPresets.Find(name) is null)
            {
                option.AddError(StrategyPresets.UnknownNameMessage(name));
            }
        });
        var tasks = new Option<int>("--tasks") { Description = "Split Fashion-MNIST tasks to stream (1 to 5).", DefaultValueFactory = _ => 5 };
        AddTaskCountCheck(tasks);
        var clients = new Option<int>("--clients")
        {
            Description = $"Concurrent inference clients during the stream, 0 to {DemoOptions.MaxClients}; 0 sends no load.",
            DefaultValueFactory = _ => 2,
        };
        AddIntegerCheck(clients, count => count is < 0 or > DemoOptions.MaxClients
            ? $"--clients must be 0 to {DemoOptions.MaxClients}, but it is {count}."
            : null);
        var keepRuns = new Option<int>("--keep-runs")
        {
            Description = $"Run directories kept under runs/, this one included (each 30 to 70 MB), 0 to {DemoOptions.MaxKeepRuns}. "
                + "Older ones are deleted once the server listens, and 0 keeps all.",
            DefaultValueFactory = _ => 5,
        };
        AddIntegerCheck(keepRuns, count => count is < 0 or > DemoOptions.MaxKeepRuns
            ? $"--keep-runs must be 0 to {DemoOptions.MaxKeepRuns}, but it is {count}."
            : null);
        var command = new Command("demo", "Run broker, learner and server in one process on Fashion-MNIST while load-testing inference.")
        {
            DataOption, UrlsOption, DeviceOption, StrategyOption, ReplayCapacityOption, SeedOption, tasks, clients, keepRuns, RecordFormatOption,
        };
        command.SetAction(async (result, cancellation) =>
        {
            var options = new DemoOptions
            {
                DataDirectory = result.GetValue(DataOption)!,
                Urls = result.GetValue(UrlsOption)!,
                Device = result.GetValue(DeviceOption)!,
                Tasks = result.GetValue(tasks),
                Clients = result.GetValue(clients),
                KeepRuns = result.GetValue(keepRuns),
                RecordFormat = RecordFormatOf(result),
                Trainer = TrainerFrom(result),
                StrategyName = result.GetValue(StrategyOption)!,
            };
            string? invalid = ExperimentCommand.FindInvalidTrainerSetting(options.Trainer)
                ?? DemoStartChecks.FindInvalidUrls(options.Urls)
                ?? DemoStartChecks.FindInvalidDevice(options.Device)
                ?? IdxDataset.FindMissingFashionMnist(options.DataDirectory);
            if (invalid is not null)
            {
                Console.Error.WriteLine(invalid);
                return RoleCommandLine.InvalidConfigurationExitCode;
            }

            IdxDataset training;
            IdxDataset test;
            try
            {
                (training, test) = DemoRunner.LoadData(options.DataDirectory);
            }
            catch (InvalidDataException exception)
            {
                await Console.Error.WriteLineAsync("The demo did not start: " + exception.Message).ConfigureAwait(false);
                return RoleCommandLine.InvalidConfigurationExitCode;
            }

            using ILoggerFactory loggers = CreateLoggerFactory(LogLevel.Warning);
            if (Console.IsOutputRedirected)
            {
                // Spectre.Console wraps at 80 columns when it cannot ask a terminal; keep log lines whole.
                AnsiConsole.Console.Profile.Width = 200;
            }

            DemoResult outcome;
            try
            {
                outcome = await new DemoRunner(options, AnsiConsole.Console, loggers).RunAsync(training, test, cancellation).ConfigureAwait(false);
            }
            catch (Exception exception) when (ListenFailures.Describe(exception, "--urls", DemoHttpsAdvice) is { } message)
            {
                await Console.Error.WriteLineAsync("The demo did not start: " + message).ConfigureAwait(false);
                return RoleCommandLine.InvalidConfigurationExitCode;
            }
            catch (DemoLearnerFailedException exception)
            {
                // Event 263 has already logged the learner's exception with its stack trace.
                await Console.Error.WriteLineAsync(exception.Message).ConfigureAwait(false);
                return RoleCommandLine.ServiceFailedExitCode;
            }

            DemoReport.Print(AnsiConsole.Console, outcome);
            AnsiConsole.MarkupLine($"Report written to [bold]{DemoReport.Save(outcome).EscapeMarkup()}[/]");
            AnsiConsole.MarkupLine($"HTML report written to [bold]{DemoReport.SaveHtml([outcome]).EscapeMarkup()}[/]");
            return outcome.RequestsFailed == 0 ? 0 : 1;
        });
        return command;
    }

    // Adds check's error for a parsed value of option. A value that is not a number is skipped, because the parser
    // reports that conversion error itself.
    // librdkafka reads a port it cannot parse as 0 and retries until its timeout, so a placeholder such as
    // 127.0.0.1:PORT is rejected when the command line is parsed, as the learn and serve roles reject it.
    private static Option<string> WithBootstrapCheck(Option<string> option)
    {
        option.Validators.Add(result =>
        {
            if (Distribution.LearnerOptionsValidator.BootstrapServersError(result.GetValueOrDefault<string>()) is { } error)
            {
                result.AddError("--bootstrap-servers: " + error);
            }
        });
        return option;
    }

    private static Option<string> WithChoices(Option<string> option, params string[] choices)
    {
        option.AcceptOnlyFromAmong(choices);
        return option;
    }

    internal static RecordFormat RecordFormatOf(ParseResult result) =>
        result.GetValue(RecordFormatOption) == "binary" ? RecordFormat.Binary : RecordFormat.Json;

    /// <summary>
    /// Returns the message of <paramref name="exception"/> without the " (Parameter 'name')" that ArgumentException
    /// appends, because the parameter name means nothing on a command line.
    /// </summary>
    internal static string MessageWithoutParameter(ArgumentException exception) =>
        exception.ParamName is null ? exception.Message : exception.Message.Replace($" (Parameter '{exception.ParamName}')", "", StringComparison.Ordinal);

    internal static void AddIntegerCheck(Option<int> option, Func<int, string?> check) => AddCheck(option, check);

    /// <summary>Limits a --tasks option to the five tasks of Split Fashion-MNIST.</summary>
    internal static void AddTaskCountCheck(Option<int> tasks) => AddIntegerCheck(tasks, count => count is < 1 or > 5
        ? $"--tasks must be 1 to 5 (Split Fashion-MNIST has five tasks of two classes); it is {count}."
        : null);

    internal static void AddCheck<T>(Option<T> option, Func<T, string?> check) =>
        option.Validators.Add(result =>
        {
            T value;
            try
            {
                value = result.GetValueOrDefault<T>()!;
            }
            catch (InvalidOperationException)
            {
                return;
            }

            if (check(value) is { } error)
            {
                result.AddError(error);
            }
        });

    private static Command BrokerCommand()
    {
        var partitions = new Option<int>("--partitions") { Description = "Partitions of the topic created at start.", DefaultValueFactory = _ => 1 };
        var versionTopic = new Option<string>("--version-topic")
        {
            Description = "Topic of version announcements created at start, for learners and servers started with the same --version-topic.",
            DefaultValueFactory = _ => VersionTopic,
        };
        AddIntegerCheck(partitions, count => count < 1 ? $"--partitions must be 1 or more, but it is {count}." : null);
        var command = new Command("broker", "Run the embedded development Kafka broker (librdkafka's mock cluster) on 127.0.0.1 until Ctrl+C.")
        {
            TopicOption, partitions, versionTopic,
        };

        command.SetAction(async (result, cancellation) =>
        {
            // The mock cluster cannot create a topic twice, so a shared name would fail after the start with a stack trace.
            // This is no parse validator because in System.CommandLine 2.0.0 a command validator does not see default values.
            string topic = result.GetValue(TopicOption)!;
            string versions = result.GetValue(versionTopic)!;
            if (string.IsNullOrWhiteSpace(topic) || string.IsNullOrWhiteSpace(versions))
            {
                await Console.Error.WriteLineAsync("--topic and --version-topic must not be empty.").ConfigureAwait(false);
                return RoleCommandLine.InvalidConfigurationExitCode;
            }

            if (versions == topic || versions == topic + ".dlq")
            {
                await Console.Error.WriteLineAsync(
                    $"--version-topic '{versions}' is also the examples topic or its dead-letter topic. Give the announcements a topic of their own.").ConfigureAwait(false);
                return RoleCommandLine.InvalidConfigurationExitCode;
            }

            using ILoggerFactory loggers = CreateLoggerFactory(LogLevel.Information);
            using EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.Start(logger: loggers.CreateLogger<EmbeddedKafkaBroker>());
            broker.CreateTopic(topic, result.GetValue(partitions));
            broker.CreateTopic(topic + ".dlq", 1);
            // The learner announces versions here; the mock cannot create topics through the admin API.
            broker.CreateTopic(versions, 1);
            Console.WriteLine($"bootstrap servers: {broker.BootstrapServers}");
            Console.WriteLine($"topics: {topic}, {topic}.dlq, {versions}. Development only: the broker keeps about 5 MiB per partition and nothing on disk. Press Ctrl+C to stop.");
            // SIGTERM (a container stop, kill) and SIGINT (Ctrl+C) stop the broker and exit with code 0. Without these
            // handlers System.CommandLine ended the process with code 143 or 130 before this line printed.
            using var terminated = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            void OnStopSignal(PosixSignalContext signal)
            {
                signal.Cancel = true;
                terminated.Cancel();
            }

            using PosixSignalRegistration onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnStopSignal);
            using PosixSignalRegistration onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnStopSignal);
            await WaitForCancellationAsync(terminated.Token).ConfigureAwait(false);
            Console.WriteLine("broker stopped; its topics and records are gone");
            return 0;
        });
        return command;
    }

    private static TrainerOptions TrainerFrom(ParseResult result)
    {
        var baseline = new TrainerOptions
        {
            ReplayCapacity = result.GetValue(ReplayCapacityOption),
            Seed = result.GetValue(SeedOption),
        };
        return StrategyPresets.Named(result.GetValue(StrategyOption)!, baseline);
    }

    internal static ILoggerFactory CreateLoggerFactory(LogLevel minimum) =>
        LoggerFactory.Create(logging => logging
            .SetMinimumLevel(minimum)
            .AddSimpleConsole(console =>
            {
                console.SingleLine = true;
                console.TimestampFormat = "HH:mm:ss ";
            })
            .UseJsonConsoleWhenConfigured());

    private static async Task WaitForCancellationAsync(CancellationToken cancellation)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, cancellation).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Ctrl+C or SIGTERM: the caller shuts down.
        }
    }
}
