using System.Net.Sockets;
using ContinualServe.Server.Cli;
using Shouldly;
using Xunit;

namespace ContinualServe.Server.Tests.Cli;

/// <summary>
/// Messages of Kestrel's listen failures, with the exception types and message prefixes that Kestrel raises when it
/// starts listening.
/// </summary>
public sealed class ListenFailuresTests
{
    private const string Advice = "Use an http:// address.";

    public static TheoryData<string, Exception, string> Failures => new()
    {
        { "bind", new IOException("Failed to bind to address http://127.0.0.1:8080: address already in use."), "Choose another address with --urls or --management-urls." },
        { "address", new SocketException((int)SocketError.AddressNotAvailable), "--urls or --management-urls names an address that is not on this machine (" },
        { "url", new FormatException("Invalid url: 'http://'"), "Use an address such as http://127.0.0.1:8080 in --urls or --management-urls." },
        { "scheme", new InvalidOperationException("Unrecognized scheme in server address 'ftp://x'."), "Use an http:// or https:// address such as http://127.0.0.1:8080 in --urls or --management-urls." },
        { "port", new ArgumentOutOfRangeException("port"), "A port in --urls or --management-urls is outside 0 to 65535." },
        { "https", new InvalidOperationException("Unable to configure HTTPS endpoint. No server certificate was specified."), "An https:// listen address has no certificate. " + Advice },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public void ListenFailureNamesOptions(string name, Exception exception, string expected)
    {
        string? message = ListenFailures.Describe(exception, "--urls or --management-urls", Advice);

        message.ShouldNotBeNull(name);
        message.ShouldContain(expected, Case.Sensitive, name);
    }

    [Fact]
    public void BindFailureKeepsKestrelMessage()
    {
        var exception = new IOException("Failed to bind to address http://127.0.0.1:8080: address already in use.");

        string? message = ListenFailures.Describe(exception, "--urls", Advice);

        message.ShouldBe("Failed to bind to address http://127.0.0.1:8080: address already in use. Choose another address with --urls.");
    }

    [Fact]
    public void InvalidUrlGetsFullStop()
    {
        string? message = ListenFailures.Describe(new FormatException("Invalid url: '127.0.0.1:8091'"), "--urls", Advice);

        message.ShouldBe("Invalid url: '127.0.0.1:8091'. Use an address such as http://127.0.0.1:8080 in --urls.");
    }

    [Theory]
    [InlineData("io")]
    [InlineData("socket")]
    [InlineData("argument")]
    [InlineData("operation")]
    public void OtherExceptionGivesNull(string kind)
    {
        Exception exception = kind switch
        {
            "io" => new IOException("Disk full."),
            "socket" => new SocketException((int)SocketError.ConnectionRefused),
            "argument" => new ArgumentException("Device 'tpu' is invalid; expected auto, cpu, cuda or cuda:N."),
            _ => new InvalidOperationException("Sequence contains no elements."),
        };

        ListenFailures.Describe(exception, "--urls", Advice).ShouldBeNull();
    }
}
