using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>Exit codes and stderr of the built <c>continualserve</c> executable for invalid command lines.</summary>
public sealed class ParseErrorExitTests
{
    [Theory]
    [InlineData("demo --bogus", "Unrecognized command or argument '--bogus'")]
    [InlineData("nosuch", "Unrecognized command or argument 'nosuch'")]
    [InlineData("", "Required command was not provided")]
    [InlineData("bench", "Option '--url' is required")]
    [InlineData("demo --tasks x", "Cannot parse argument 'x' for option '--tasks'")]
    [InlineData("demo --tasks 9", "--tasks must be 1 to 5")]
    [InlineData("serve --stor models", "Unrecognized argument '--stor'")]
    [InlineData("serve --stroe models", "Did you mean '--store'?")]
    [InlineData("produce --bootstrap-servers 127.0.0.1:PORT", "--bootstrap-servers: '127.0.0.1:PORT' is not host:port with a port from 1 to 65535")]
    [InlineData("produce --bootstrap-servers 127.0.0.1:1 --record-format xml", "Argument 'xml' not recognized. Must be one of:")]
    [InlineData("broker --partitions 0", "--partitions must be 1 or more, but it is 0.")]
    [InlineData("produce --bootstrap-servers 127.0.0.1:1 --tasks 0", "--tasks must be 1 to 5")]
    [InlineData("produce --bootstrap-servers 127.0.0.1:1 --tasks 9", "--tasks must be 1 to 5")]
    public async Task ParseErrorExitsWithTwo(string arguments, string message)
    {
        (int exitCode, string standardOutput, string standardError) = await RunAsync(arguments);

        exitCode.ShouldBe(2, standardError);
        standardError.ShouldContain(message);
        standardOutput.ShouldNotContain(message);
    }

    [Theory]
    [InlineData("experiment --data /nonexistent/fashion-mnist", "Install the Debian package dataset-fashion-mnist")]
    [InlineData("demo --data /nonexistent/fashion-mnist", "Install the Debian package dataset-fashion-mnist")]
    [InlineData("produce --bootstrap-servers 127.0.0.1:1 --data /nonexistent/fashion-mnist", "Install the Debian package dataset-fashion-mnist")]
    [InlineData("bench --url http://127.0.0.1:9/infer --body /nonexistent/body.json", "File does not exist")]
    [InlineData("bench --url http://127.0.0.1:9/infer --body /dev/null --clients 0", "--clients must be 1 or more, but it is 0.")]
    [InlineData("bench --url http://127.0.0.1:9/infer --body /dev/null --seconds -5", "--seconds must be more than 0 and at most 86400, but it is -5.")]
    [InlineData("bench --url http://127.0.0.1:9/infer --body /dev/null --seconds NaN", "--seconds must be more than 0")]
    [InlineData("bench --url http://127.0.0.1:9/infer --body /dev/null --seconds 1e300", "--seconds must be more than 0")]
    [InlineData("bench --url http://127.0.0.1:9/infer --body /dev/null --max-requests 0", "--max-requests must be 1 or more, but it is 0.")]
    [InlineData("bench --url http://127.0.0.1:9/infer --body /dev/null --content-type bad/type/x", "--content-type: 'bad/type/x' is not a valid media type")]
    [InlineData("bench --url http://127.0.0.1:9/infer --body /tmp", "--body: '/tmp' is a directory.")]
    [InlineData("bench --url http://127.0.0.1:9/infer --body /dev/zero", "--body: '/dev/zero' is larger than 67108864 bytes (64 MiB)")]
    [InlineData("bench --url notaurl --body /dev/null", "--url must be an absolute http:// or https:// URL, but it is 'notaurl'.")]
    [InlineData("bench --url ftp://127.0.0.1:9/x --body /dev/null", "--url must be an absolute http:// or https:// URL")]
    [InlineData("bench --url http://192.0.2.1:9/infer --body /dev/null", "may be loaded.\n")]
    [InlineData("experiment --validation-fraction 1.5", "but it is 1.5")]
    [InlineData("serve --device gpu --urls http://127.0.0.1:0", "expected auto, cpu, cuda or cuda:N. Pass it with --device.")]
    [InlineData("serve --urls ftp://127.0.0.1:0", "Use an http:// or https:// address such as http://127.0.0.1:8080")]
    [InlineData("serve --urls http://192.0.2.1:8080", "names an address that is not on this machine")]
    [InlineData("serve --urls http://127.0.0.1:0 --model-name a/b", "Server:ModelName 'a/b' is invalid: it must start with a letter or digit and contain only letters, digits, '.', '_' and '-'")]
    [InlineData("serve --urls http://127.0.0.1:0 --model-name a%2Fb", "Server:ModelName 'a%2Fb' is invalid: it must start with a letter or digit and contain only letters, digits, '.', '_' and '-'")]
    [InlineData("serve --urls http://127.0.0.1:0 --Server:StoreDirectry=/tmp/x", "'Server:StoreDirectry' (did you mean 'Server:StoreDirectory'?)")]
    [InlineData("experiment --strategies best,bogus", "unknown strategy 'bogus'")]
    [InlineData("experiment --seeds 1,x", "'x' is not a whole number")]
    [InlineData("experiment --seeds 1,2,1", "--seeds: seed 1 is given more than once.")]
    [InlineData("experiment --feature-lr-scale -1", "--feature-lr-scale: The field FeatureLearningRateScale must be between 0 and 10")]
    [InlineData("experiment --analytic-regularization 1e9", "--analytic-regularization: The field AnalyticRegularization must be between")]
    [InlineData("experiment --strategies ,", "--strategies: no strategy given")]
    [InlineData("experiment --validation-fraction NaN --data /nonexistent/fashion-mnist", "--validation-fraction must be")]
    [InlineData("experiment --threads -1 --data /nonexistent/fashion-mnist", "--threads must be")]
    [InlineData("demo --replay-capacity -5 --data /nonexistent/fashion-mnist", "--replay-capacity: The field ReplayCapacity must be between 0 and")]
    [InlineData("demo --clients -1 --data /nonexistent/fashion-mnist", "--clients must be 0 to 64, but it is -1.")]
    [InlineData("demo --keep-runs -1 --data /nonexistent/fashion-mnist", "--keep-runs must be 0 to 100, but it is -1.")]
    [InlineData("demo --keep-runs 101 --data /nonexistent/fashion-mnist", "--keep-runs must be 0 to 100, but it is 101.")]
    [InlineData("demo --urls notaurl --data /nonexistent/fashion-mnist", "--urls: 'notaurl' is not a valid listen address")]
    [InlineData("demo --urls ftp://x --data /nonexistent/fashion-mnist", "--urls: 'ftp://x' has the scheme 'ftp', but only http:// and https:// are supported.")]
    [InlineData("demo --urls http://127.0.0.1:99999 --data /nonexistent/fashion-mnist", "--urls: the port of 'http://127.0.0.1:99999' is 99999, outside 0 to 65535.")]
    [InlineData("demo --device tpu --data /nonexistent/fashion-mnist", "--device: Device 'tpu' is invalid; expected auto, cpu, cuda or cuda:N.\n")]
    [InlineData("demo --device cuda:x --data /nonexistent/fashion-mnist", "--device: Device 'cuda:x'")]
    [InlineData("demo --clients 100000 --data /nonexistent/fashion-mnist", "--clients must be 0 to 64, but it is 100000.")]
    [InlineData("broker --topic cats --version-topic cats", "--version-topic 'cats' is also the examples topic or its dead-letter topic")]
    [InlineData("broker --topic cats --version-topic cats.dlq", "--version-topic 'cats.dlq' is also the examples topic or its dead-letter topic")]
    public async Task InvalidRunSettingsExitWithTwo(string arguments, string message)
    {
        (int exitCode, _, string standardError) = await RunAsync(arguments);

        exitCode.ShouldBe(2, standardError);
        standardError.ShouldContain(message);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("serve --help")]
    [InlineData("demo --help --bogus")]
    public async Task HelpExitsWithZero(string arguments)
    {
        (int exitCode, string standardOutput, string standardError) = await RunAsync(arguments);

        exitCode.ShouldBe(0, standardError);
        standardOutput.ShouldContain("Usage:");
        standardError.ShouldBeEmpty();
    }

    // An empty --topic parses, and produce sent every record to a topic without a name.
    [Theory]
    [InlineData("")]
    [InlineData(" ")]
    public async Task EmptyProduceTopicExitsWithTwo(string topic)
    {
        (int exitCode, _, string standardError) = await ContinualServeProcess.RunAsync(["produce", "--bootstrap-servers", "127.0.0.1:1", "--topic", topic]);

        exitCode.ShouldBe(2, standardError);
        standardError.ShouldContain("--topic must not be empty.");
    }

    private static Task<(int ExitCode, string StandardOutput, string StandardError)> RunAsync(string arguments) =>
        ContinualServeProcess.RunAsync(arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries));
}
