using System.CommandLine;
using System.Globalization;
using System.ComponentModel.DataAnnotations;
using Confluent.Kafka;
using ContinualServe.Learner;
using ContinualServe.Learner.Data;
using ContinualServe.Learner.Ingestion;
using ContinualServe.Learner.Kafka;

namespace ContinualServe.Server.Cli;

/// <summary>
/// <c>continualserve produce</c>: streams labeled examples into the learner's topic, from the Fashion-MNIST IDX
/// files (--data) or from a JSON lines (--jsonl) or CSV (--csv) file. A JSON lines or CSV file is read twice:
/// first to validate every line, so that an invalid file produces nothing, then to send the examples in file order.
/// </summary>
public static class ProduceCommand
{
    // Larger counts can never fit in a record, and the readers allocate the features of each line up front.
    private const int MaxFeatureCount = ExampleProducer.MaxKeyAndValueBytes / 2;

    // 4 MiB, which leaves 1 MiB of the embedded broker's 5 MiB per partition for record framing and the one record
    // that the producer sends past the bound.
    private const long DefaultMaxLagBytes = 4 * 1024 * 1024;

    public static Command Create()
    {
        var tasks = new Option<int>("--tasks") { Description = "Split Fashion-MNIST tasks to stream, from task 1 (IDX files only; 1 to 5).", DefaultValueFactory = _ => 5 };
        CommandLine.AddTaskCountCheck(tasks);
        var test = new Option<bool>("--test-set") { Description = "Stream the test files (t10k) instead of the training files (IDX files only)." };
        var jsonl = new Option<string>("--jsonl")
        {
            Description = "JSON lines file to stream, one record per line: {\"id\":\"a-1\",\"task\":1,\"label\":0,\"features\":[...]}. Excludes --data and --csv.",
        };
        var csv = new Option<string>("--csv")
        {
            Description = "CSV file to stream: a header row naming the columns task, label, an optional id and one column per feature, then one example per row. Excludes --data and --jsonl.",
        };
        var features = new Option<int>("--features")
        {
            Description = "Features per example in a --jsonl or --csv file; must match the learner's model.",
            DefaultValueFactory = _ => 784,
        };
        var classes = new Option<int>("--classes")
        {
            Description = "Classes of a --jsonl or --csv file: labels must be 0 to this number minus 1.",
            DefaultValueFactory = _ => 10,
        };
        CommandLine.AddIntegerCheck(features, count => count switch
        {
            < 1 => $"--features must be 1 or more, but it is {count}.",
            > MaxFeatureCount => $"--features must be at most {MaxFeatureCount}, because each feature takes at least 2 bytes of a message of at most {ExampleProducer.MaxKeyAndValueBytes} bytes; it is {count}.",
            _ => null,
        });
        CommandLine.AddIntegerCheck(classes, count => count < 2 ? $"--classes must be 2 or more, but it is {count}." : null);
        var group = new Option<string>("--group")
        {
            Description = "Consumer group to pace to: stay at most --max-lag records and --max-lag-bytes bytes ahead of its committed offsets. Without it the stream is not paced.",
        };
        var maxLag = new Option<int>("--max-lag")
        {
            Description = "Records the producer may be ahead of --group's committed offsets; keep it above the records a learner round reads "
                + "(about 1,140 by default: 1,024 trained, the batch of 32 that passes Learner:RoundExamples of 1,000, plus the 10% held out).",
            DefaultValueFactory = _ => 1500,
        };
        var maxLagBytes = new Option<long>("--max-lag-bytes")
        {
            Description = "Bytes of keys and values the producer may be ahead of --group's committed offsets. The producer waits at this "
                + "bound or at --max-lag, whichever it reaches first. Keep it below the broker's retention per partition, about 5 MiB for the "
                + $"embedded broker. The default, {DefaultMaxLagBytes} (4 MiB), stops records of 7 KB at about 600.",
            DefaultValueFactory = _ => DefaultMaxLagBytes,
        };

        var kafkaConfig = new Option<string>("--kafka-config")
        {
            Description = "File of extra librdkafka properties, one name=value a line, e.g. security.protocol=SASL_SSL, as in the roles' --kafka-config.",
        };

        // A lag of 0 or less would turn pacing off without a word, because ExampleProducer reads 0 as "not paced".
        CommandLine.AddIntegerCheck(maxLag, lag => lag < 1 ? $"--max-lag must be 1 or more, but it is {lag}." : null);
        CommandLine.AddCheck(maxLagBytes, bytes => bytes < 1 ? $"--max-lag-bytes must be 1 or more, but it is {bytes}." : null);
        var command = new Command(
            "produce",
            "Stream labeled examples into a topic, one record per example keyed by its id: the Fashion-MNIST IDX files as Split Fashion-MNIST tasks, or a JSON lines or CSV file in file order.")
        {
            CommandLine.BootstrapOption, CommandLine.TopicOption, CommandLine.DataOption, jsonl, csv, features, classes, tasks, test, CommandLine.RecordFormatOption, group, maxLag, maxLagBytes, kafkaConfig,
        };
        command.SetAction(async (result, cancellation) =>
        {
            string? jsonlPath = result.GetValue(jsonl);
            string? csvPath = result.GetValue(csv);
            if (string.IsNullOrWhiteSpace(result.GetValue(CommandLine.TopicOption)))
            {
                await Console.Error.WriteLineAsync("--topic must not be empty.").ConfigureAwait(false);
                return RoleCommandLine.InvalidConfigurationExitCode;
            }

            // Pacing waits for --group's committed offsets, so without a group these options would do nothing.
            if (string.IsNullOrEmpty(result.GetValue(group)) && (IsGiven(result, maxLag) || IsGiven(result, maxLagBytes)))
            {
                await Console.Error.WriteLineAsync("--max-lag and --max-lag-bytes pace the stream to --group's committed offsets; pass --group with them, or leave them out.").ConfigureAwait(false);
                return RoleCommandLine.InvalidConfigurationExitCode;
            }

            if (FindConflictingOptions(result, jsonl, csv, features, classes, tasks, test) is { } conflict)
            {
                await Console.Error.WriteLineAsync(conflict).ConfigureAwait(false);
                return RoleCommandLine.InvalidConfigurationExitCode;
            }

            KafkaClientProperties kafkaProperties;
            try
            {
                kafkaProperties = KafkaClientProperties.Load(result.GetValue(kafkaConfig), EnvironmentKafkaProperties());
                kafkaProperties.Validate();
            }
            catch (InvalidDataException exception)
            {
                await Console.Error.WriteLineAsync(exception.Message).ConfigureAwait(false);
                return RoleCommandLine.InvalidConfigurationExitCode;
            }

            IdxDataset? dataset = null;
            ExampleFile? file = null;
            if (jsonlPath is not null || csvPath is not null)
            {
                (string path, ExampleFileFormat format) = jsonlPath is not null ? (jsonlPath, ExampleFileFormat.JsonLines) : (csvPath!, ExampleFileFormat.Csv);
                ExampleRecordCodec codec;
                try
                {
                    IConfiguration environment = new ConfigurationBuilder().AddEnvironmentVariables().Build();
                    codec = CreateCodec(result.GetValue(features), result.GetValue(classes), environment);
                }
                catch (InvalidDataException exception)
                {
                    await Console.Error.WriteLineAsync(exception.Message).ConfigureAwait(false);
                    return RoleCommandLine.InvalidConfigurationExitCode;
                }

                if (ValidateFile(path, format, codec, CommandLine.RecordFormatOf(result)) is not long count)
                {
                    return RoleCommandLine.InvalidConfigurationExitCode;
                }

                Console.WriteLine($"validated {count} examples in {path}");
                file = new ExampleFile(path, format, codec, count);
            }
            else
            {
                if (IdxDataset.FindMissingFashionMnist(result.GetValue(CommandLine.DataOption)!) is { } missing)
                {
                    await Console.Error.WriteLineAsync(missing).ConfigureAwait(false);
                    return RoleCommandLine.InvalidConfigurationExitCode;
                }

                try
                {
                    dataset = IdxDataset.LoadFashionMnist(result.GetValue(CommandLine.DataOption)!, training: !result.GetValue(test));
                }
                catch (InvalidDataException exception)
                {
                    // The message names the file and what is wrong with it.
                    await Console.Error.WriteLineAsync(exception.Message).ConfigureAwait(false);
                    return RoleCommandLine.InvalidConfigurationExitCode;
                }
            }

            using ILoggerFactory loggers = CommandLine.CreateLoggerFactory(LogLevel.Information);
            KafkaClientLog.LogExtraProperties(loggers.CreateLogger<KafkaClientProperties>(), kafkaProperties);
            string bootstrapServers = result.GetValue(CommandLine.BootstrapOption)!;
            string topic = result.GetValue(CommandLine.TopicOption)!;
            string? pacedGroup = result.GetValue(group);
            using CommittedOffsetTracker? tracker = string.IsNullOrEmpty(pacedGroup) ? null : new CommittedOffsetTracker(bootstrapServers, pacedGroup, topic, loggers.CreateLogger<CommittedOffsetTracker>(), kafkaProperties);
            var producer = new ExampleProducer(bootstrapServers, topic, loggers.CreateLogger<ExampleProducer>())
            {
                ConsumerName = $"consumer group '{pacedGroup}'",
                MaxLag = tracker is null ? 0 : result.GetValue(maxLag),
                MaxLagBytes = result.GetValue(maxLagBytes),
                MaxTasks = result.GetValue(tasks),
                IdPrefix = result.GetValue(test) ? "test" : "train",
                Format = CommandLine.RecordFormatOf(result),
                KafkaProperties = kafkaProperties,
            };
            Func<long>? position = tracker is null ? null : tracker.CommittedTotal;
            var progress = new Progress<long>(count => Console.WriteLine($"queued {count} records"));
            long sent;
            try
            {
                sent = file is null
                    ? await producer.ProduceAsync(dataset!, position, progress, cancellation).ConfigureAwait(false)
                    : await producer.ProduceAsync(ExampleFileReader.ReadAll(file.Path, file.Format, file.Codec), file.Count, position, progress, cancellation).ConfigureAwait(false);
            }
            catch (KafkaException exception)
            {
                // The paced producer queries the broker for the group's offsets, so a broker that stops responding ends the run.
                // The producer's own timeout message already names the broker and what to check.
                string reason = exception.Error.Reason.TrimEnd('.');
                string advice = reason.Contains(bootstrapServers, StringComparison.Ordinal) ? "" : $" Check that the broker at {bootstrapServers} is running.";
                await Console.Error.WriteLineAsync($"Producing failed ({exception.Error.Code}): {reason}.{advice}").ConfigureAwait(false);
                return 1;
            }
            catch (Exception exception) when (exception is ExampleFileException or IOException)
            {
                // The file passed validation before producing started, so it changed or became unreadable while it was being sent.
                await Console.Error.WriteLineAsync($"Producing failed after validation, and some records may already be in {topic}: {exception.Message}").ConfigureAwait(false);
                return 1;
            }

            Console.WriteLine($"produced {sent} records to {producer.Topic}; the broker acknowledged every one");
            return 0;
        });
        return command;
    }

    /// <summary>
    /// Returns the error for options that do not go together: more than one of --jsonl, --csv and an explicit
    /// --data, IDX-only options with a file, or file-only options with the IDX files. Returns null when they fit.
    /// </summary>
    private static string? FindConflictingOptions(
        ParseResult result, Option<string> jsonl, Option<string> csv, Option<int> features, Option<int> classes, Option<int> tasks, Option<bool> test)
    {
        bool fromJsonl = result.GetValue(jsonl) is not null;
        bool fromCsv = result.GetValue(csv) is not null;
        bool fromIdx = IsGiven(result, CommandLine.DataOption);
        if ((fromJsonl ? 1 : 0) + (fromCsv ? 1 : 0) + (fromIdx ? 1 : 0) > 1)
        {
            return "--jsonl, --csv and --data are mutually exclusive. Give one of them.";
        }

        if ((fromJsonl || fromCsv) && (IsGiven(result, tasks) || IsGiven(result, test)))
        {
            return "--tasks and --test-set apply only to the Fashion-MNIST IDX files of --data. Remove them when streaming --jsonl or --csv.";
        }

        if (!fromJsonl && !fromCsv && (IsGiven(result, features) || IsGiven(result, classes)))
        {
            return "--features and --classes apply only to --jsonl and --csv files. The Fashion-MNIST IDX files always have 784 features and 10 classes.";
        }

        return null;
    }

    /// <summary>
    /// Creates the codec that checks a file's examples, with the learner's Learner:MaxTask and
    /// Learner:MaxAbsFeatureValue read from <paramref name="configuration"/> (environment variables such as
    /// Learner__MaxTask for the command) and the learner's defaults where a key is not set.
    /// </summary>
    /// <exception cref="InvalidDataException">A limit is not a number or is outside the range the learner accepts.</exception>
    // NOTE: Learner:MaxTaskJump is not checked, because it depends on the current task of the stream that the learner reads.
    internal static ExampleRecordCodec CreateCodec(int featureCount, int classCount, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var limits = new LearnerOptions();
        string maxTaskKey = $"{LearnerOptions.SectionName}:{nameof(LearnerOptions.MaxTask)}";
        if (configuration[maxTaskKey] is { } maxTaskText)
        {
            limits.MaxTask = int.TryParse(maxTaskText, NumberStyles.Integer, CultureInfo.InvariantCulture, out int maxTask)
                ? maxTask
                : throw new InvalidDataException($"{maxTaskKey} is '{maxTaskText}'; expected a whole number from 1 to {int.MaxValue}.");
        }

        string maxAbsKey = $"{LearnerOptions.SectionName}:{nameof(LearnerOptions.MaxAbsFeatureValue)}";
        if (configuration[maxAbsKey] is { } maxAbsText)
        {
            limits.MaxAbsFeatureValue = float.TryParse(maxAbsText, NumberStyles.Float, CultureInfo.InvariantCulture, out float maxAbs)
                ? maxAbs
                : throw new InvalidDataException($"{maxAbsKey} is '{maxAbsText}'; expected a number from 1 to 3.4E+38.");
        }

        foreach (string property in new[] { nameof(LearnerOptions.MaxTask), nameof(LearnerOptions.MaxAbsFeatureValue) })
        {
            var results = new List<ValidationResult>();
            object? value = typeof(LearnerOptions).GetProperty(property)!.GetValue(limits);
            if (!Validator.TryValidateProperty(value, new ValidationContext(limits) { MemberName = property }, results))
            {
                throw new InvalidDataException(results[0].ErrorMessage);
            }
        }

        return new ExampleRecordCodec(featureCount, classCount)
        {
            MaxTask = limits.MaxTask,
            MaxAbsFeatureValue = limits.MaxAbsFeatureValue,
        };
    }

    // The roles read Kafka:Properties from configuration, which includes environment variables such as
    // Kafka__Properties__security.protocol. Produce has no configuration files, so it reads those variables only.
    private static IEnumerable<KeyValuePair<string, string>> EnvironmentKafkaProperties() =>
        new ConfigurationBuilder().AddEnvironmentVariables().Build()
            .GetSection($"{KafkaOptions.SectionName}:{nameof(KafkaOptions.Properties)}")
            .GetChildren()
            .Select(child => new KeyValuePair<string, string>(child.Key, child.Value ?? ""));

    private static bool IsGiven(ParseResult result, Option option) => result.GetResult(option) is { Implicit: false };

    // Returns the number of examples, or null after writing the first problem to stderr.
    private static long? ValidateFile(string path, ExampleFileFormat format, ExampleRecordCodec codec, RecordFormat recordFormat)
    {
        string option = format == ExampleFileFormat.Csv ? "--csv" : "--jsonl";
        if (Directory.Exists(path))
        {
            Console.Error.WriteLine($"{path}: is a directory. Give the {option} file itself.");
            return null;
        }

        if (!File.Exists(path))
        {
            Console.Error.WriteLine($"{path}: file not found. Check the {option} path.");
            return null;
        }

        try
        {
            return ExampleFileReader.Validate(path, format, codec, recordFormat);
        }
        catch (ExampleFileException exception)
        {
            Console.Error.WriteLine(exception.Message);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"{path}: reading the {option} file failed: {exception.Message}");
        }

        return null;
    }

    // A validated file of examples.
    private sealed record ExampleFile(string Path, ExampleFileFormat Format, ExampleRecordCodec Codec, long Count);
}
